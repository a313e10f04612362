"""Console forms: sign-in (with the agent lockout), inbox filters and the reply box."""

from django import forms

from contacts.models import Contact
from conversations.models import MAX_MESSAGE_LENGTH, Conversation
from identity.admin import LockoutAuthenticationForm


class ConsoleLoginForm(LockoutAuthenticationForm):
    """Email and password; failures count toward the same lockout as the API's sign-in."""


class InboxFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Conversation.Status.choices], required=False
    )
    trust = forms.ChoiceField(choices=[("", "Any trust"), *Contact.Trust.choices], required=False)

    def filters(self) -> dict:
        """Valid filters only: a tampered query string just falls back to no filter."""
        if not self.is_valid():
            return {"status": None, "trust": None}
        return {
            "status": self.cleaned_data["status"] or None,
            "trust": self.cleaned_data["trust"] or None,
        }


class ReplyForm(forms.Form):
    """The reply box, whose text is kept as typed, as the API keeps it.

    A pasted snippet's indentation and trailing newline are part of it; a reply of only
    whitespace is refused as an empty one is.
    """

    text = forms.CharField(
        label="Reply",
        max_length=MAX_MESSAGE_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Write a reply…"}),
    )

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        if not text.strip():
            raise forms.ValidationError(
                self.fields["text"].error_messages["required"], code="required"
            )
        return text
