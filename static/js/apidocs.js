// The API reference (/docs/api): Swagger UI renders the OpenAPI document
// named by #api-reference's data-spec-url. Loaded from /static, like the
// bundle, so the page keeps the Content-Security-Policy: no inline script,
// no eval, nothing fetched from elsewhere (no validator badge).
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("api-reference");
    if (!root || typeof window.SwaggerUIBundle !== "function") return;
    window.SwaggerUIBundle({
      url: root.getAttribute("data-spec-url"),
      domNode: root,
      deepLinking: true,
      validatorUrl: null,
      defaultModelsExpandDepth: 0,
      docExpansion: "list",
      tryItOutEnabled: false,
      persistAuthorization: false,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
