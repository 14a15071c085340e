// The API page: Swagger UI over the portal's OpenAPI document (no inline script: the CSP).
// Requests tried from the page carry the session cookie and the CSRF token of /me.
(function () {
  "use strict";
  var element = document.getElementById("swagger-ui");
  if (!element || typeof SwaggerUIBundle === "undefined") { return; }
  var token = null;
  fetch(element.dataset.url.replace(/openapi\.json$/, "me"), { credentials: "same-origin" })
    .then(function (answer) { return answer.ok ? answer.json() : {}; })
    .then(function (me) { token = me.csrf_token || null; })
    .catch(function () { token = null; });
  SwaggerUIBundle({
    url: element.dataset.url,
    domNode: element,
    deepLinking: false,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    requestInterceptor: function (request) {
      request.credentials = "same-origin";
      if (token && request.method && request.method.toUpperCase() !== "GET") {
        request.headers["X-CSRFToken"] = token;
      }
      return request;
    },
    onComplete: function () { element.dataset.loaded = "1"; }
  });
})();
