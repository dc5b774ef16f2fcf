// Zoom: both photos at full resolution (1:1), scrolled together.
(function () {
  const frames = Array.from(document.querySelectorAll(".frame"));
  function toggle() {
    document.body.classList.toggle("zoomed");
    document.getElementById("zoom").textContent =
      document.body.classList.contains("zoomed") ? "Fit to window" : "Zoom 1:1";
  }
  document.getElementById("zoom").addEventListener("click", toggle);
  frames.forEach(function (f) { f.querySelector("img").addEventListener("click", toggle); });
  let syncing = false;
  frames.forEach(function (f) {
    f.addEventListener("scroll", function () {
      if (syncing) return;
      syncing = true;
      frames.forEach(function (g) {
        if (g !== f) { g.scrollLeft = f.scrollLeft; g.scrollTop = f.scrollTop; }
      });
      syncing = false;
    });
  });
})();
