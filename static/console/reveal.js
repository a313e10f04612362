/* The show-once page of a new API key or signing secret: "Copy" puts the value on the clipboard,
   or selects it where the page is not a secure context. A file of its own, for the pages'
   Content-Security-Policy (script-src 'self'). */
(function () {
  "use strict";
  var button = document.getElementById("cs-copy");
  if (!button) {
    return;
  }
  var input = document.getElementById(button.getAttribute("data-target"));
  var status = document.getElementById("cs-copy-status");
  function selectForKeyboard() {
    input.select();
    status.textContent = "Press Ctrl+C (⌘C) to copy.";
  }
  button.addEventListener("click", function () {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () {
        status.textContent = "Copied to the clipboard.";
      }, selectForKeyboard);
    } else {
      selectForKeyboard();
    }
  });
})();
