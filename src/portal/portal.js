// Portcullis portal: the "Copy" buttons. A button with data-copy="ID"
// copies the value (or text) of the element with that id. Served as a
// file of its own, so the CSP can forbid inline script.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  var text = source.value !== undefined ? source.value : source.textContent;
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text);
  } else if (source.select) {
    source.select();
    document.execCommand("copy");
  }
  button.setAttribute("data-copied", "true");
});
