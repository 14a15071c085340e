// The record page's IIIF viewer: read the Presentation 3 manifest, open the image service of
// each canvas in OpenSeadragon (one page at a time). No inline script: the portal's CSP.
(function () {
  "use strict";
  var element = document.getElementById("iiif-viewer");
  var status = document.getElementById("iiif-status");
  if (!element || typeof OpenSeadragon === "undefined") { return; }
  function label(value) {
    // a IIIF language map ({"zh": ["题名"]}): its Chinese text, else the first it has
    if (!value) { return ""; }
    var texts = value.zh || value.none || value[Object.keys(value)[0]] || [];
    return texts[0] || "";
  }
  function services(manifest, labels) {
    var out = [];
    (manifest.items || []).forEach(function (canvas) {
      (canvas.items || []).forEach(function (page) {
        (page.items || []).forEach(function (annotation) {
          var body = annotation.body || {};
          (body.service || []).forEach(function (service) {
            var id = service.id || service["@id"];
            if (id) {
              out.push(id.replace(/\/$/, "") + "/info.json");
              labels.push(label(canvas.label));
            }
          });
        });
      });
    });
    return out;
  }
  // the caption: the page's title, which page of how many, and the reader's access in
  // Chinese (the record's label may be a folder's name; the tier never shows as a code)
  function caption(labels, index) {
    var parts = [labels[index] || ""];
    if (labels.length > 1) {
      parts.push(element.dataset.page.replace("{n}", String(index + 1))
                                      .replace("{total}", String(labels.length)));
    }
    if (element.dataset.tier) { parts.push(element.dataset.tier); }
    return parts.filter(function (p) { return p; }).join(" · ");
  }
  fetch(element.dataset.manifest, { credentials: "same-origin",
                                    headers: { Accept: "application/ld+json" } })
    .then(function (answer) {
      if (!answer.ok) { throw new Error(answer.status); }
      return answer.json();
    })
    .then(function (manifest) {
      var labels = [];
      var sources = services(manifest, labels);
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
        status.textContent = caption(labels, 0);
      });
      viewer.addHandler("page", function (event) {
        status.textContent = caption(labels, event.page);
      });
      viewer.addHandler("open-failed", function (event) {
        element.dataset.failed = "1";
        status.textContent = element.dataset.failedText +
          (event.message ? "（" + String(event.message) + "）" : "");
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
