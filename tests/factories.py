"""factory_boy factories for every model; tests build rows through these only."""

import factory
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact, Device
from conversations.models import Conversation, Message
from identity.models import Membership, Organization, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"agent{n}@example.test")
    first_name = "Alex"
    last_name = factory.Sequence(lambda n: f"Agent{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    org = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.AGENT


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    org = factory.SubFactory(OrganizationFactory)
    trust = Contact.Trust.ANONYMOUS


class VerifiedContactFactory(ContactFactory):
    trust = Contact.Trust.VERIFIED
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@shop.test")
    user_id = factory.Sequence(lambda n: f"user-{n}")
    verified_at = factory.LazyFunction(timezone.now)


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    contact = factory.SubFactory(ContactFactory)
    org = factory.SelfAttribute("contact.org")


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    contact = factory.SubFactory(ContactFactory)
    org = factory.SelfAttribute("contact.org")


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message
        skip_postgeneration_save = True

    conversation = factory.SubFactory(ConversationFactory)
    org = factory.SelfAttribute("conversation.org")
    sender_kind = Message.SenderKind.CONTACT
    body = factory.Sequence(lambda n: f"message {n}")

    @factory.post_generation
    def newest(message, create, extracted, **kwargs):
        # As conversations.services._message_append does: the conversation points at its newest.
        if create:
            Conversation.objects.filter(pk=message.conversation_id).filter(
                Q(last_message__isnull=True) | Q(last_message_id__lt=message.pk)
            ).update(last_message=message)
