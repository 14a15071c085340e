// The record page's IIIF viewer: read the Presentation 3 manifest, open the image service of
// each canvas in OpenSeadragon (one page at a time). No inline script: the portal's CSP.
(function () {
  "use strict";
  var element = document.getElementById("iiif-viewer");
  var status = document.getElementById("iiif-status");
  if (!element || typeof OpenSeadragon === "undefined") { return; }
  function services(manifest) {
    var out = [];
    (manifest.items || []).forEach(function (canvas) {
      (canvas.items || []).forEach(function (page) {
        (page.items || []).forEach(function (annotation) {
          var body = annotation.body || {};
          (body.service || []).forEach(function (service) {
            var id = service.id || service["@id"];
            if (id) { out.push(id.replace(/\/$/, "") + "/info.json"); }
          });
        });
      });
    });
    return out;
  }
  fetch(element.dataset.manifest, { credentials: "same-origin",
                                    headers: { Accept: "application/ld+json" } })
    .then(function (answer) {
      if (!answer.ok) { throw new Error(answer.status); }
      return answer.json();
    })
    .then(function (manifest) {
      var sources = services(manifest);
      if (!sources.length) { status.textContent = element.dataset.empty; return; }
      var viewer = OpenSeadragon({
        element: element,
        prefixUrl: element.dataset.prefix,
        tileSources: sources,
        sequenceMode: sources.length > 1,
        showReferenceStrip: sources.length > 1,
        crossOriginPolicy: false,
        ajaxWithCredentials: true
      });
      viewer.addHandler("open", function () {
        element.dataset.loaded = String(sources.length);
        status.textContent = (manifest.label && (manifest.label.zh || [])[0]) || "";
      });
      viewer.addHandler("open-failed", function (event) {
        element.dataset.failed = "1";
        status.textContent = String(event.message || "open failed");
      });
      viewer.addHandler("tile-loaded", function () {
        element.dataset.tiles = String(Number(element.dataset.tiles || 0) + 1);
      });
    })
    .catch(function (error) {
      element.dataset.failed = "1";
      status.textContent = String(error);
    });
})();
