// Progressive enhancement only: every form works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // "Print" buttons.
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
  // A delivery list file goes into the text field, which is what the form sends.
  document.querySelectorAll("input[type=file][data-into]").forEach(function (input) {
    input.closest(".field").hidden = false;
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) return;
      file.text().then(function (text) {
        document.getElementById(input.dataset.into).value = text;
      });
    });
  });
  // "Select all" for label printing.
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    box.closest("label").hidden = false;
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name=" + box.dataset.selectAll + "]").forEach(function (c) {
        c.checked = box.checked;
      });
    });
  });
});
