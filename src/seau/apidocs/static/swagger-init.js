// Starts Swagger UI on /docs. It is a file rather than the usual inline script so that
// the page's Content-Security-Policy can allow scripts from seau's own origin only.
"use strict";

window.ui = SwaggerUIBundle({
  url: document.currentScript.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // No badge that would send the schema to swagger.io's validator.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
