//! The table of route templates and their methods, read from the generated OpenAPI spec plus
//! the few routes outside it. Middleware uses it to label metrics by template (bounded
//! cardinality) and to answer 405 with an accurate `Allow` header.

use std::sync::Arc;

use poem::http::Method;

/// One path template and the methods it accepts.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    /// The template as documented, e.g. `/api/v1/projects/{id}` (shared: it labels metrics).
    pub template: Arc<str>,
    segments: Vec<Option<String>>,
    /// Accepted methods (HEAD implied by GET, OPTIONS by CORS).
    pub methods: Vec<Method>,
}

/// All known routes.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<RouteEntry>,
}

const SPEC_METHODS: &[(&str, Method)] =
    &[("get", Method::GET), ("put", Method::PUT), ("post", Method::POST), ("delete", Method::DELETE), ("patch", Method::PATCH)];

impl RouteTable {
    /// Reads `paths` from an OpenAPI document and adds `extra` routes.
    pub fn from_spec(spec: &serde_json::Value, extra: &[(&str, &[Method])]) -> Self {
        let mut table = Self::default();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (template, item) in paths {
                let methods = SPEC_METHODS.iter().filter(|(key, _)| item.get(*key).is_some()).map(|(_, m)| m.clone()).collect();
                table.add(template, methods);
            }
        }
        for (template, methods) in extra {
            table.add(template, methods.to_vec());
        }
        // Literal segments win over parameters: sort templates with fewer parameters first.
        table.routes.sort_by_key(|r| r.segments.iter().filter(|s| s.is_none()).count());
        table
    }

    fn add(&mut self, template: &str, methods: Vec<Method>) {
        let segments = split(template).map(|s| if s.starts_with('{') && s.ends_with('}') { None } else { Some(s.to_owned()) }).collect();
        self.routes.push(RouteEntry { template: template.into(), segments, methods });
    }

    /// The route a request path belongs to, if any.
    pub fn find(&self, path: &str) -> Option<&RouteEntry> {
        // Split twice rather than collect: no allocation on every request.
        let count = split(path).count();
        self.routes.iter().find(|r| {
            r.segments.len() == count && r.segments.iter().zip(split(path)).all(|(seg, part)| seg.as_deref().is_none_or(|lit| lit == part))
        })
    }
}

impl RouteEntry {
    /// The name of the `index`-th path parameter of the template (the framework reports
    /// unparsable path parameters by position).
    pub fn param_name(&self, index: usize) -> Option<&str> {
        self.template.split('/').filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}')).nth(index)
    }

    /// The project id a request `path` on this route names (its `{project_id}` segment), if it
    /// parses.
    pub fn project_id(&self, path: &str) -> Option<uuid::Uuid> {
        let index = self.template.split('/').filter(|s| !s.is_empty()).position(|s| s == "{project_id}")?;
        split(path).nth(index).and_then(|id| uuid::Uuid::parse_str(id).ok())
    }

    /// The `Allow` header value for this route.
    pub fn allow_header(&self) -> String {
        let mut names: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        if self.methods.contains(&Method::GET) {
            names.push("HEAD");
        }
        names.push("OPTIONS");
        names.join(", ")
    }
}

/// The project a path under `/api/v1/projects/{id}` names, if its id parses.
pub fn project_of(path: &str) -> Option<uuid::Uuid> {
    path.strip_prefix("/api/v1/projects/").and_then(|rest| rest.split('/').next()).and_then(|id| uuid::Uuid::parse_str(id).ok())
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_templates_and_prefers_literals() {
        let spec = serde_json::json!({"paths": {
            "/api/v1/projects/{id}": {"get": {}, "delete": {}},
            "/api/v1/projects/search": {"post": {}},
        }});
        let table = RouteTable::from_spec(&spec, &[("/metrics", &[Method::GET])]);
        assert_eq!(&*table.find("/api/v1/projects/42").unwrap().template, "/api/v1/projects/{id}");
        assert_eq!(&*table.find("/api/v1/projects/search").unwrap().template, "/api/v1/projects/search");
        assert_eq!(table.find("/api/v1/projects/42").unwrap().allow_header(), "GET, DELETE, HEAD, OPTIONS");
        assert!(table.find("/api/v1/nope").is_none());
        assert_eq!(&*table.find("/metrics/").unwrap().template, "/metrics");
        assert!(table.find("/api/v1/projects/42/extra").is_none());
        assert!(table.find("/api/v1").is_none());
    }
}
