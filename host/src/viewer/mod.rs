//! The live event viewer: a small web page served on the `ws` and `wss`
//! listeners' HTTP side.
//!
//! `/` (and `/index.html`) is a page that connects back to the same host and
//! port over websockets (`ws://` when it was loaded over http, `wss://` over
//! https), subscribes to a topic filter the visitor types (default `#`, or
//! `?topic=` in the address) and lists events as they arrive: topic, time,
//! payload (pretty-printed when it is JSON), with a pause button and a
//! running count. The page, its script and its stylesheet are in `assets/`;
//! MQTT.js 5.16.0 (npm `mqtt`, `dist/mqtt.min.js`, MIT license) is vendored
//! in `vendor/` with its license, which the page links to. Everything is
//! compiled into the binary: the page loads nothing from anywhere else and
//! needs no build step.
//!
//! This module only serves those static files. Websocket upgrades never reach
//! it: the transport answers an upgrade request on any path itself and hands
//! the viewer only plain HTTP requests (see `firehose_transport::ws`). Any
//! other path is 404, as without the viewer.
//!
//! To update MQTT.js: bump `mqtt` in `tests/clients/node/package.json` (the
//! e2e suite tests that version from Node), `npm install` there, and copy
//! `node_modules/mqtt/dist/mqtt.min.js` and `node_modules/mqtt/LICENSE.md`
//! over the files in `vendor/`.

use firehose_transport::{HttpFuture, HttpHandler, HttpRequest, HttpResponse, NotFound};

/// One file the viewer serves.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: &[u8] = include_bytes!("assets/index.html");

/// Everything the viewer serves, by request path.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: INDEX_HTML,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: INDEX_HTML,
    },
    Asset {
        path: "/viewer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/viewer.js"),
    },
    Asset {
        path: "/viewer.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/viewer.css"),
    },
    Asset {
        path: "/mqtt.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("vendor/mqtt.min.js"),
    },
    Asset {
        path: "/mqtt.LICENSE.md",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("vendor/mqtt.LICENSE.md"),
    },
];

/// The page may run only its own scripts and styles and open websockets
/// (MQTT.js runs its keep-alive timer in a worker it makes from a blob);
/// nothing else, and no one may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     worker-src blob:; style-src 'self'; img-src data:; connect-src 'self' ws: wss:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The [`HttpHandler`] of the websocket listeners: the viewer's files, 404
/// for any other path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Viewer;

impl HttpHandler for Viewer {
    fn handle(&self, req: HttpRequest) -> HttpFuture<'_> {
        Box::pin(std::future::ready(self.respond(&req)))
    }
}

impl Viewer {
    /// The answer to `req`: everything here is static, so it is synchronous.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        // The page's own `?topic=` is read by its script, not here.
        let path = req.path.split(['?', '#']).next().unwrap_or_default();
        let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
            return NotFound::respond(req);
        };
        if req.method != "GET" && req.method != "HEAD" {
            return HttpResponse::text(405, format!("{} allows GET and HEAD only\n", asset.path))
                .with_header("Allow", "GET, HEAD");
        }
        HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: asset.body.to_vec(),
        }
        .with_header("Content-Type", asset.content_type)
        // The files change only with the binary: revalidate on every load.
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![("Host".to_owned(), "127.0.0.1:8080".to_owned())],
            body: Vec::new(),
            remote_addr: "127.0.0.1:50000".parse().unwrap(),
            secure: false,
        }
    }

    fn get(path: &str) -> HttpResponse {
        Viewer.respond(&request("GET", path))
    }

    fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn root_and_index_html_serve_the_page() {
        for path in ["/", "/index.html", "/?topic=gerrit/%23", "/index.html#top"] {
            let response = get(path);
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(
                header(&response, "Content-Type"),
                Some("text/html; charset=utf-8")
            );
            assert_eq!(response.body, INDEX_HTML, "{path}");
        }
    }

    #[test]
    fn each_asset_has_its_content_type() {
        for (path, content_type) in [
            ("/viewer.js", "text/javascript; charset=utf-8"),
            ("/mqtt.min.js", "text/javascript; charset=utf-8"),
            ("/viewer.css", "text/css; charset=utf-8"),
            ("/mqtt.LICENSE.md", "text/plain; charset=utf-8"),
        ] {
            let response = get(path);
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(
                header(&response, "Content-Type"),
                Some(content_type),
                "{path}"
            );
            assert_eq!(header(&response, "Cache-Control"), Some("no-cache"));
            assert_eq!(header(&response, "X-Content-Type-Options"), Some("nosniff"));
            assert!(!response.body.is_empty(), "{path} is empty");
        }
    }

    #[test]
    fn every_file_the_page_links_is_served() {
        let page = std::str::from_utf8(INDEX_HTML).unwrap();
        let mut linked = Vec::new();
        for attribute in ["src=\"", "href=\""] {
            for (start, _) in page.match_indices(attribute) {
                let rest = &page[start + attribute.len()..];
                let target = &rest[..rest.find('"').unwrap()];
                if target.starts_with('/') {
                    linked.push(target);
                }
            }
        }
        assert!(linked.contains(&"/mqtt.min.js"), "{linked:?}");
        assert!(linked.contains(&"/viewer.js"), "{linked:?}");
        assert!(linked.contains(&"/viewer.css"), "{linked:?}");
        for target in linked {
            assert_eq!(get(target).status, 200, "{target} is linked but not served");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = std::str::from_utf8(INDEX_HTML).unwrap();
        assert!(!page.contains("http://") && !page.contains("https://"));
        let response = get("/");
        let csp = header(&response, "Content-Security-Policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("connect-src 'self' ws: wss:"), "{csp}");
    }

    #[test]
    fn the_viewer_script_never_writes_html() {
        let script = String::from_utf8(get("/viewer.js").body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!script.contains(sink), "viewer.js uses {sink}");
        }
        assert!(script.contains("textContent"));
    }

    #[test]
    fn the_vendored_bundle_is_mqtt_js_5() {
        let bundle = get("/mqtt.min.js").body;
        let bundle = std::str::from_utf8(&bundle).unwrap();
        assert!(
            bundle.starts_with("\"use strict\";var mqtt="),
            "not the browser bundle"
        );
        assert!(bundle.contains("\"5.16.0\""), "not MQTT.js 5.16.0");
        let license = get("/mqtt.LICENSE.md").body;
        assert!(String::from_utf8(license).unwrap().contains("MIT License"));
    }

    #[test]
    fn head_is_answered_like_get() {
        let response = Viewer.respond(&request("HEAD", "/viewer.js"));
        assert_eq!(response.status, 200);
        assert_eq!(
            header(&response, "Content-Type"),
            Some("text/javascript; charset=utf-8")
        );
    }

    #[test]
    fn other_methods_get_405_naming_the_allowed_ones() {
        let response = Viewer.respond(&request("POST", "/"));
        assert_eq!(response.status, 405);
        assert_eq!(header(&response, "Allow"), Some("GET, HEAD"));
    }

    #[test]
    fn any_other_path_is_404_as_without_the_viewer() {
        for path in [
            "/mqtt",
            "/favicon.ico",
            "/viewer.js/",
            "/INDEX.HTML",
            "/../index.html",
        ] {
            let response = get(path);
            assert_eq!(response.status, 404, "{path}");
            assert_eq!(response, NotFound::respond(&request("GET", path)), "{path}");
        }
    }
}
