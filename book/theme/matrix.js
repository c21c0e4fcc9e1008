// The behaviour matrix (and any table that quotes it): the tests mark a cell that is a hole
// with ✗ and a closed one with ✓ (tests/tests/matrix.rs); colour them, so that the step where a
// row flips stands out on a projector. The symbols stay, for readers who do not see colour.
(function () {
    "use strict";
    document.querySelectorAll(".wide-table td").forEach(function (cell) {
        var text = cell.textContent.trim();
        if (text.indexOf("\u2717") === 0) {
            cell.classList.add("matrix-hole");
        } else if (text.indexOf("\u2713") === 0) {
            cell.classList.add("matrix-closed");
        }
    });
})();
