"""The OpenAPI document and the human docs page (Swagger UI, served from its package)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import RootModel

from gateway.contract import Operation, Reply, route
from gateway.openapi import OPENAPI_PATH
from gateway.problems import problem_response

log = logging.getLogger("gateway.docs")

OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)
DOCS_PATH = "/docs"
SWAGGER_UI_PATH = "/docs/swagger-ui"


def swagger_ui_files() -> Path | None:
    """Swagger UI 5's static build, as the flask-swagger-ui package ships it.

    Found without importing that package (which would import Flask): only its files are
    used. Swagger UI 5 is the first to render OpenAPI 3.1. None when not installed.
    """
    spec = importlib.util.find_spec("flask_swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = Path(next(iter(spec.submodule_search_locations))) / "dist"
    return files if (files / "swagger-ui-bundle.js").is_file() else None


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Calendence API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="{SWAGGER_UI_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{SWAGGER_UI_PATH}/favicon-32x32.png" sizes="32x32">
  <style>body {{ margin: 0; }} .swagger-ui .topbar {{ display: none; }}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{SWAGGER_UI_PATH}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{OPENAPI_PATH}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      displayRequestDuration: true,
      showExtensions: true,
      filter: true,
    }});
  </script>
</body>
</html>
""".encode()


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[OPENAPI_DOCUMENT],
        content_type="application/json",
        # Public and the same for everyone: any page (an API explorer) may read it.
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
    )


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=_PAGE, content_type="text/html", charset="utf-8")


async def docs_missing(request: web.Request) -> web.Response:
    return problem_response(
        503, "the docs page needs the flask-swagger-ui package (Swagger UI's files)"
    )


routes = [
    route(
        Operation(
            "GET",
            OPENAPI_PATH,
            name="get_openapi_document",
            summary="This OpenAPI document",
            tag="API description",
            key_kinds=(),
            description="Public. Rendered for people at `/docs`.",
            replies=(Reply(200, OpenApiDocument, "The OpenAPI 3.1 document"),),
        ),
        openapi_document,
    ),
]


def page_routes() -> list[web.AbstractRouteDef]:
    """Not API routes (not in the document): the page people read, and its files."""
    files = swagger_ui_files()
    if files is None:
        log.warning("Swagger UI's files are not installed: /docs answers 503")
        return [web.get(DOCS_PATH, docs_missing, allow_head=False)]
    return [web.get(DOCS_PATH, docs_page, allow_head=False), web.static(SWAGGER_UI_PATH, files)]
