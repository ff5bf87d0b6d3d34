//! `GET /v2/openapi.json`: the API's OpenAPI 3.1 description, kept in the repo as
//! `api/openapi.json` and served as it is. It needs no credentials: a client reads it before
//! it has any.

use lambda_http::{Body, Response};
use roomrec_http_edge::ApiError;

/// The OpenAPI 3.1 description of every HTTP route of `template.yaml`.
pub const OPENAPI_JSON: &str = include_str!("../../../api/openapi.json");

/// The route key this document is served on.
pub(crate) const ROUTE: &str = "GET /v2/openapi.json";

/// The response carrying the document.
pub(crate) fn document() -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::Text(OPENAPI_JSON.to_owned()))
        .unwrap_or_else(|err| ApiError::internal(&err).into_response(ROUTE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn spec() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("api/openapi.json is JSON")
    }

    /// Every `$ref` string under `value`, with the JSON path it sits at.
    fn refs<'v>(value: &'v Value, at: String, found: &mut Vec<(String, &'v str)>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push((at.clone(), target));
                }
                for (key, child) in map {
                    refs(child, format!("{at}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    refs(child, format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    /// `operation`'s parameters with `$ref`s to components resolved.
    fn parameters<'v>(spec: &'v Value, operation: &'v Value) -> Vec<&'v Value> {
        let listed = operation.get("parameters").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        listed
            .iter()
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(target) => spec.pointer(target.trim_start_matches('#')).expect("parameter $ref resolves"),
                None => p,
            })
            .collect()
    }

    #[test]
    fn the_document_is_served_as_json_without_credentials() {
        let response = document();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let Body::Text(text) = response.body() else { panic!("a text body") };
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), spec());
        let operation = &spec()["paths"]["/v2/openapi.json"]["get"];
        assert_eq!(operation["security"], serde_json::json!([]), "the document must not ask for credentials");
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_ref_resolves() {
        let spec = spec();
        let version = spec["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3.1."), "openapi is {version:?}");
        assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
        let mut found = Vec::new();
        refs(&spec, String::new(), &mut found);
        assert!(found.len() > 100, "only {} $refs", found.len());
        for (at, target) in found {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{at}: external $ref {target}"));
            assert!(spec.pointer(pointer).is_some(), "{at}: $ref {target} resolves to nothing");
        }
    }

    #[test]
    fn every_operation_declares_its_path_parameters_and_documents_its_answers() {
        let spec = spec();
        let mut operation_ids = std::collections::HashSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            let in_path: Vec<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            for (method, operation) in item.as_object().unwrap().iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                let at = format!("{method} {path}");
                let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId"));
                assert!(operation_ids.insert(id.to_owned()), "{at}: operationId {id} is used twice");
                let declared: Vec<&str> = parameters(&spec, operation)
                    .into_iter()
                    .filter(|p| p["in"] == "path")
                    .inspect(|p| assert_eq!(p["required"], true, "{at}: path parameter {} is optional", p["name"]))
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let (mut want, mut have) = (in_path.clone(), declared);
                want.sort_unstable();
                have.sort_unstable();
                assert_eq!(want, have, "{at}: path parameters");
                let responses = operation["responses"].as_object().unwrap_or_else(|| panic!("{at}: no responses"));
                // A redirect (`GET /console`) is its route's success.
                let success = responses.keys().any(|s| s.starts_with('2') || s.starts_with('3'));
                assert!(success, "{at}: no success response");
                let public = operation.get("security").is_some_and(|s| s == &serde_json::json!([]));
                assert!(public || responses.contains_key("401"), "{at}: authenticated but no 401 documented");
            }
        }
    }
}
