//! The HTTP API routes of `template.yaml`, each bound to its function's handler.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use anyhow::{bail, Context};
use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use serde_norway::Value;

/// A function's handler, as its Lambda binary runs it.
pub type Handler = for<'a> fn(&'a Deps, Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

macro_rules! handlers {
    ($($binary:literal => $krate:ident),* $(,)?) => {
        /// The handler of the function built as `binary`.
        fn handler_for(binary: &str) -> Option<Handler> {
            match binary {
                $($binary => Some(|deps, req| Box::pin($krate::handle(deps, req))),)*
                _ => None,
            }
        }
    };
}

handlers! {
    "apps-api" => apps_api,
    "record-rules-api" => record_rules_api,
    "record-callback-api" => record_callback_api,
    "rooms-api" => rooms_api,
    "individual-jobs-api" => individual_jobs_api,
    "mix-jobs-api" => mix_jobs_api,
    "jocloud-api" => jocloud_api,
    "preflight-api" => preflight_api,
    "web-console" => web_console,
}

/// One `HttpApi` event of a function.
pub struct Route {
    pub method: String,
    /// The template path, e.g. `/v2/apps/{app_id}`; with the method it is the route key.
    pub path: String,
    segments: Vec<String>,
    /// The function's binary (`BuildProperties.Binary`), which names its role too.
    pub binary: String,
    pub handler: Handler,
}

impl Route {
    /// The path parameters if `path` matches this route.
    /// A greedy variable (`{proxy+}`, last) takes the rest of the path, at least one segment.
    pub fn matches(&self, path: &str) -> Option<HashMap<String, String>> {
        let mut parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let greedy = self.segments.last().and_then(|last| last.strip_prefix('{')?.strip_suffix("+}"));
        if let Some(name) = greedy {
            let fixed = self.segments.len() - 1;
            if parts.len() <= fixed {
                return None;
            }
            let rest = parts.split_off(fixed).join("/");
            let mut params = matches_fixed(&self.segments[..fixed], &parts)?;
            let value = percent_encoding::percent_decode_str(&rest).decode_utf8().ok()?;
            params.insert(name.to_owned(), value.into_owned());
            return Some(params);
        }
        matches_fixed(&self.segments, &parts)
    }
}

/// The path parameters if `parts` match `segments` one for one.
fn matches_fixed(segments: &[String], parts: &[&str]) -> Option<HashMap<String, String>> {
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (pattern, &part) in segments.iter().zip(parts) {
        match pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !part.is_empty() => {
                let value = percent_encoding::percent_decode_str(part).decode_utf8().ok()?;
                params.insert(name.to_owned(), value.into_owned());
            }
            Some(_) => return None,
            None if pattern == part => {}
            None => return None,
        }
    }
    Some(params)
}

/// Every HttpApi route of every function in the SAM template.
pub fn from_template(text: &str) -> anyhow::Result<Vec<Route>> {
    let template: Value = serde_norway::from_str(text).context("template.yaml is not YAML")?;
    let resources = template.get("Resources").and_then(Value::as_mapping).context("template has no Resources")?;
    let mut routes = Vec::new();
    for (name, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap_or_default();
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .with_context(|| format!("{name} has no Metadata.BuildProperties.Binary"))?;
        let events = resource.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping);
        for event in events.into_iter().flat_map(|e| e.values()) {
            // Functions fed by other sources (callback-delivery's SQS) have local runners of
            // their own; only HTTP functions need a handler here.
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let Some(handler) = handler_for(binary) else { bail!("{name}: no local handler for binary {binary}") };
            let props = event.get("Properties").with_context(|| format!("{name}: HttpApi event without Properties"))?;
            let path = props.get("Path").and_then(Value::as_str).context("HttpApi event without Path")?;
            let method = props.get("Method").and_then(Value::as_str).context("HttpApi event without Method")?;
            routes.push(Route {
                method: method.to_ascii_uppercase(),
                path: path.to_owned(),
                segments: path.split('/').map(str::to_owned).collect(),
                binary: binary.to_owned(),
                handler,
            });
        }
    }
    if routes.is_empty() {
        bail!("template.yaml declares no HttpApi routes");
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_template_has_a_handler_and_matches_its_own_path() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
        let routes = from_template(&text).unwrap();
        assert!(routes.len() >= 20, "{} routes", routes.len());
        let route = routes.iter().find(|r| r.path == "/v2/apps/{app_id}/record-rules/{rule_id}").unwrap();
        let params = route.matches("/v2/apps/abc/record-rules/r%201").unwrap();
        assert_eq!(params["app_id"], "abc");
        assert_eq!(params["rule_id"], "r 1");
        assert!(route.matches("/v2/apps/abc/record-rules").is_none());
        assert!(route.matches("/v2/apps//record-rules/x").is_none());
    }

    #[test]
    fn a_greedy_variable_takes_the_rest_of_the_path_and_needs_at_least_one_segment() {
        let routes = from_template(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap(),
        )
        .unwrap();
        let files = routes.iter().find(|r| r.path == "/console/{proxy+}").unwrap();
        assert_eq!(files.matches("/console/a/b%20c.js").unwrap()["proxy"], "a/b c.js");
        assert_eq!(files.matches("/console/index.html").unwrap()["proxy"], "index.html");
        assert!(files.matches("/console/").is_none() && files.matches("/console").is_none());
        assert!(files.matches("/consoles/index.html").is_none());
    }

    #[test]
    fn cloudformation_short_tags_do_not_stop_the_template_from_reading() {
        let text = r#"
Resources:
  AppsFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: apps-api
    Properties:
      Role: !GetAtt AppsRole.Arn
      Environment:
        Variables:
          TABLE: !Ref AppsTable
          QUEUE_URL: !Sub "https://sqs.${AWS::Region}.amazonaws.com/${AWS::AccountId}/jobs"
      Events:
        List:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /v2/apps
            Method: get
"#;
        let routes = from_template(text).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!((routes[0].method.as_str(), routes[0].path.as_str()), ("GET", "/v2/apps"));
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_of_the_template() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
        let in_template: std::collections::BTreeSet<String> =
            from_template(&text).unwrap().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        let spec: serde_json::Value = serde_json::from_str(apps_api::OPENAPI_JSON).unwrap();
        let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
        let mut in_spec = std::collections::BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|m| methods.contains(&m.as_str())) {
                in_spec.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
        let undocumented: Vec<_> = in_template.difference(&in_spec).collect();
        let not_served: Vec<_> = in_spec.difference(&in_template).collect();
        assert!(undocumented.is_empty(), "routes of template.yaml missing from api/openapi.json: {undocumented:?}");
        assert!(
            not_served.is_empty(),
            "operations of api/openapi.json that template.yaml does not route: {not_served:?}"
        );
    }
}
