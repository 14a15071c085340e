// Ask before a decision that is not undone with one click (grant, refuse, revoke, disable):
// a button with data-confirm asks its question; without JavaScript the form just submits.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});
