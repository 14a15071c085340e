// Ask before a decision that is not undone with one click (grant, refuse, revoke, disable):
// a button with data-confirm asks its question; without JavaScript the form just submits.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});

// The label picker: a filter by 档号 and a select-all for the rows shown (made here, so that
// a page without JavaScript shows no control that does nothing).
document.addEventListener("DOMContentLoaded", function () {
  var table = document.querySelector("table.pick");
  if (!table) { return; }
  var bar = document.createElement("p");
  bar.className = "pick-tools";
  var filter = document.createElement("input");
  filter.type = "search";
  filter.placeholder = table.getAttribute("data-filter-label") || "";
  filter.setAttribute("aria-label", filter.placeholder);
  var all = document.createElement("label");
  var box = document.createElement("input");
  box.type = "checkbox";
  all.appendChild(box);
  all.appendChild(document.createTextNode(" " + (table.getAttribute("data-all-label") || "")));
  bar.appendChild(filter);
  bar.appendChild(all);
  table.parentNode.insertBefore(bar, table);
  var rows = function () { return Array.prototype.slice.call(table.querySelectorAll("tr")).filter(function (r) { return r.querySelector("input[type=checkbox]"); }); };
  filter.addEventListener("input", function () {
    var word = filter.value.trim();
    rows().forEach(function (r) { r.hidden = word !== "" && r.textContent.indexOf(word) < 0; });
  });
  box.addEventListener("change", function () {
    rows().forEach(function (r) { if (!r.hidden) { r.querySelector("input[type=checkbox]").checked = box.checked; } });
  });
});
