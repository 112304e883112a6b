//! Each service's API as OpenAPI 3.1 (SPEC §11), generated from its route table: a route is
//! added with [`get`], [`post`], [`patch`] or [`delete`], which take who may call it (SPEC §9)
//! beside the handler and return the handler's [`MethodRouter`] and its description together
//! (`utoipa-axum` puts both in one [`OpenApiRouter`]). So a route that is served is a route
//! that is described, and its description says what the route really does:
//!
//! - **who**: the roles are both the route's guard ([`allow`]) and the operation's bearer
//!   security requirement, its "Who may call" line and its 401/403 answers;
//! - **what it answers**: the success shape from the domain type's [`ToSchema`] (a HAL item,
//!   a HAL page of them, `201` with `Location`, `204`), and problem+json for every error
//!   status it can answer: the ones the operation names ([`Op::fails`]) and the ones every
//!   route of that kind can answer (400 for a bad id, query or body, 413 and 415 for a body,
//!   404 for an item, 429 and 503 from the gateway in front, `Retry-After` on both).
//!
//! [`finish`] adds the shared components and serves the service's own `/openapi.json`;
//! [`public`] merges the services' descriptions into the gateway's, without the internal
//! calls between services.

use std::collections::BTreeSet;

use axum::handler::Handler;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use serde_json::{json, Map, Value};
use utoipa::openapi::path::{HttpMethod, Operation, PathItem, Paths};
pub use utoipa::openapi::OpenApi;
use utoipa::openapi::{RefOr, Schema};
pub use utoipa::ToSchema;
pub use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::auth::{allow, Role, SERVICES};
use crate::hal::{HAL_JSON, MAX_PAGE_SIZE};
use crate::problem::CONTENT_TYPE as PROBLEM_JSON;

/// Who may call a route: anyone, or only these roles (everyone when auth is off).
#[derive(Debug, Clone, Copy)]
pub enum Who {
    Anyone,
    Roles(&'static [Role]),
}

/// A route open to anyone, signed in or not.
pub const ANYONE: Who = Who::Anyone;

impl From<&'static [Role]> for Who {
    fn from(roles: &'static [Role]) -> Who {
        Who::Roles(roles)
    }
}

/// Marks an operation only the cafe's services call: described by the service, left out of
/// the gateway's public description (and not routed by it).
const INTERNAL: &str = "x-internal";

/// One operation: its route and its description, built together.
pub struct Op<S> {
    method: HttpMethod,
    path: &'static str,
    router: MethodRouter<S>,
    who: Who,
    op: Map<String, Value>,
    params: Vec<Value>,
    responses: Map<String, Value>,
    schemas: Vec<(String, RefOr<Schema>)>,
    body: bool,
}

macro_rules! method {
    ($name:ident, $method:ident, $filter:ident) => {
        #[doc = concat!("`", stringify!($method), " path`, called by `who`, handled by `handler`.")]
        pub fn $name<H, T, S>(path: &'static str, who: impl Into<Who>, handler: H) -> Op<S>
        where
            H: Handler<T, S>,
            T: 'static,
            S: Clone + Send + Sync + 'static,
        {
            Op::new(HttpMethod::$method, path, who.into(), axum::routing::on(MethodFilter::$filter, handler))
        }
    };
}
method!(get, Get, GET);
method!(post, Post, POST);
method!(patch, Patch, PATCH);
method!(delete, Delete, DELETE);

impl<S: Clone + Send + Sync + 'static> Op<S> {
    fn new(method: HttpMethod, path: &'static str, who: Who, router: MethodRouter<S>) -> Op<S> {
        let router = match who {
            Who::Anyone => router,
            Who::Roles(roles) => router.route_layer(allow(roles)),
        };
        Op {
            method,
            path,
            router,
            who,
            op: Map::new(),
            params: Vec::new(),
            responses: Map::new(),
            schemas: Vec::new(),
            body: false,
        }
    }

    /// One line on what the operation does; `details` below it.
    pub fn summary(mut self, summary: &str, details: &str) -> Self {
        self.op.insert("summary".into(), summary.into());
        if !details.is_empty() {
            self.op.insert("description".into(), details.into());
        }
        self
    }

    /// Groups the operation under `tag` (the resource) in the docs.
    pub fn tag(mut self, tag: &str) -> Self {
        self.op.insert("tags".into(), json!([tag]));
        self
    }

    /// A required query parameter holding text.
    pub fn query(mut self, name: &str, description: &str) -> Self {
        self.params.push(param(name, "query", description, json!({"type": "string"})));
        self
    }

    /// A required query parameter holding an id (a positive integer).
    pub fn query_id(mut self, name: &str, description: &str) -> Self {
        self.params.push(param(name, "query", description, id_schema()));
        self
    }

    /// A required query parameter that takes one of `values`.
    pub fn query_enum(mut self, name: &str, description: &str, values: &[&str]) -> Self {
        self.params.push(param(name, "query", description, json!({"type": "string", "enum": values})));
        self
    }

    /// `?page=&size=&sort=`, as every collection takes them.
    pub fn paged(mut self, sortable: &[(&str, &str)]) -> Self {
        let fields: Vec<&str> = sortable.iter().map(|(field, _)| *field).collect();
        self.params.extend([
            optional(param("page", "query", "The page, from 0.", json!({"type": "integer", "minimum": 0}))),
            optional(param(
                "size",
                "query",
                "Items a page (20 if not given).",
                json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
            )),
            optional(param(
                "sort",
                "query",
                &format!("`field` or `field,asc|desc`; the fields: {}.", fields.join(", ")),
                json!({"type": "string"}),
            )),
        ]);
        self
    }

    /// A JSON request body shaped as `T` (in a JSON object; 400 names every bad field).
    pub fn body<T: ToSchema>(mut self) -> Self {
        let schema = self.schema::<T>();
        self.op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
        self.body = true;
        self
    }

    /// `status` with one HAL item whose fields are `T`'s.
    pub fn item<T: ToSchema>(mut self, status: u16, description: &str) -> Self {
        let item = hal_item(self.schema::<T>());
        self.answer(status, json!({"description": description, "content": {HAL_JSON: {"schema": item}}}))
    }

    /// `201 Created` with the item and its `Location`.
    pub fn created<T: ToSchema>(mut self, description: &str) -> Self {
        let item = hal_item(self.schema::<T>());
        self.answer(
            201,
            json!({
                "description": description,
                "headers": {"Location": {"description": "The new item.", "schema": {"type": "string"}, "required": true}},
                "content": {HAL_JSON: {"schema": item}},
            }),
        )
    }

    /// `200` with a HAL page of `T`s, embedded under `collection`.
    pub fn page_of<T: ToSchema>(mut self, collection: &str) -> Self {
        let item = hal_item(self.schema::<T>());
        let page = json!({
            "type": "object",
            "required": ["_embedded", "_links", "page"],
            "properties": {
                "_embedded": {
                    "type": "object",
                    "required": [collection],
                    "properties": {collection: {"type": "array", "items": item}},
                },
                "_links": {"$ref": "#/components/schemas/Links"},
                "page": {"$ref": "#/components/schemas/PageInfo"},
            },
        });
        self.answer(200, json!({"description": "A page of them.", "content": {HAL_JSON: {"schema": page}}}))
    }

    /// `status` with a JSON body of any shape `schema` gives (not a HAL item).
    pub fn json(self, status: u16, description: &str, content_type: &str, schema: Value) -> Self {
        self.answer(status, json!({"description": description, "content": {content_type: {"schema": schema}}}))
    }

    /// `status` with a JSON body shaped as `T`.
    pub fn json_of<T: ToSchema>(mut self, status: u16, description: &str) -> Self {
        let schema = self.schema::<T>();
        self.json(status, description, "application/json", schema)
    }

    /// Puts `T`'s schema into the components, for a schema given by hand to refer to.
    pub fn uses<T: ToSchema>(mut self) -> Self {
        self.schema::<T>();
        self
    }

    /// `204 No Content`.
    pub fn no_content(self, description: &str) -> Self {
        self.answer(204, json!({"description": description}))
    }

    /// An error this operation can answer, as problem+json.
    pub fn fails(self, status: u16, why: &str) -> Self {
        self.answer(status, problem(why))
    }

    fn answer(mut self, status: u16, response: Value) -> Self {
        self.responses.insert(status.to_string(), response);
        self
    }

    /// A reference to `T`'s schema, which goes into the components with the schemas it uses.
    fn schema<T: ToSchema>(&mut self) -> Value {
        let name = T::name().to_string();
        self.schemas.push((name.clone(), T::schema()));
        let mut more = Vec::new();
        T::schemas(&mut more);
        self.schemas.extend(more);
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// The route and its description, with what every route of its kind answers.
    fn describe(mut self) -> UtoipaMethodRouter<S> {
        let item = self.path.contains('{');
        for name in self.path.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name) {
            self.params.push(param(name, "path", "The item's id.", id_schema()));
        }
        if item || !self.params.is_empty() || self.body {
            self.responses
                .entry("400")
                .or_insert_with(|| problem("A malformed id, query or body; every bad field named."));
        }
        if item {
            self.responses.entry("404").or_insert_with(|| problem("No such item (or not one the caller may see)."));
        }
        if self.body {
            self.responses.insert("413".into(), problem("The body is larger than 16 KiB."));
            self.responses.insert("415".into(), problem("The body is not `application/json`."));
        }
        let mut description = self.op.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        match self.who {
            Who::Anyone => description.push_str("**Who may call:** anyone, signed in or not."),
            Who::Roles(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                description.push_str(&format!("**Who may call:** {}.", names.join(", ")));
                self.op.insert("security".into(), json!([{"bearer": []}]));
                self.responses.insert("401".into(), problem("No bearer token, or one that is expired or not ours."));
                self.responses.insert("403".into(), problem("The caller's role may not do this."));
                if roles == SERVICES {
                    self.op.insert(INTERNAL.into(), true.into());
                    description.push_str(" An internal call between the cafe's services: not on the gateway.");
                }
            }
        }
        self.responses
            .entry("429")
            .or_insert_with(|| problem("Too many requests from this caller (the gateway's limit)."));
        if let Some(Value::Object(too_many)) = self.responses.get_mut("429") {
            let wait = json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}});
            too_many.insert("headers".into(), wait);
        }
        self.responses.entry("503").or_insert_with(|| {
            json!({
                "description": "A service or its database is unavailable, busy or stopping; retry after `Retry-After` seconds.",
                "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            })
        });
        self.op.insert("description".into(), description.into());
        self.op.insert("operationId".into(), operation_id(&self.method, self.path).into());
        if !self.params.is_empty() {
            self.op.insert("parameters".into(), Value::Array(self.params));
        }
        self.op.insert("responses".into(), Value::Object(self.responses));
        let op: Operation = serde_json::from_value(Value::Object(self.op)).expect("a well-formed operation");
        let paths = Paths::builder().path(self.path, PathItem::new(self.method, op)).build();
        (self.schemas, paths, self.router)
    }
}

impl<S: Clone + Send + Sync + 'static> From<Op<S>> for UtoipaMethodRouter<S> {
    fn from(op: Op<S>) -> Self {
        op.describe()
    }
}

/// Adding a described route: `OpenApiRouter::new().op(get("/orders", SIGNED_IN, list).page_of::<Order>("orders"))`.
pub trait Described<S> {
    fn op(self, op: Op<S>) -> Self;
}

impl<S: Clone + Send + Sync + 'static> Described<S> for OpenApiRouter<S> {
    fn op(self, op: Op<S>) -> Self {
        self.routes(op.into())
    }
}

/// `getOrders`, `getOrdersById`, `postPaymentsVoids`, `getDeliverypagesSearchFindByStatus`.
fn operation_id(method: &HttpMethod, path: &str) -> String {
    let verb = serde_json::to_value(method).ok().and_then(|v| v.as_str().map(str::to_lowercase)).unwrap_or_default();
    let mut id = verb;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let (by, name) = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => ("By", name),
            None => ("", segment),
        };
        id.push_str(by);
        let mut chars = name.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

/// A body of HAL links only (a search index).
pub fn links_only() -> Value {
    json!({"type": "object", "required": ["_links"], "properties": {"_links": {"$ref": "#/components/schemas/Links"}}})
}

fn param(name: &str, place: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": place, "required": true, "description": description, "schema": schema})
}

fn optional(mut param: Value) -> Value {
    param["required"] = false.into();
    param
}

fn id_schema() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 1})
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

/// An item: `fields`, plus `_links.self` and `_links.<rel>`.
fn hal_item(fields: Value) -> Value {
    json!({
        "allOf": [
            fields,
            {
                "type": "object",
                "required": ["_links"],
                "properties": {"_links": {"$ref": "#/components/schemas/Links"}},
            },
        ],
    })
}

/// What every description shares: the bearer scheme, problem+json, HAL's links and paging.
fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A token from `POST /auth/token` (EdDSA-signed, 15 minutes). SPEC §9 says which role may call what; each operation says it too.",
            },
        },
        "schemas": {
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details.",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string", "format": "uri"},
                    "title": {"type": "string"},
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "detail": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "description": "Every offending field of a failed validation.",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            },
            "Links": {
                "type": "object",
                "description": "HAL links: relation name to `{href}`.",
                "additionalProperties": {
                    "type": "object",
                    "required": ["href"],
                    "properties": {"href": {"type": "string"}},
                },
            },
            "PageInfo": {
                "type": "object",
                "required": ["size", "totalElements", "totalPages", "number"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "totalElements": {"type": "integer", "minimum": 0},
                    "totalPages": {"type": "integer", "minimum": 0},
                    "number": {"type": "integer", "minimum": 0},
                },
            },
        },
    })
}

/// A service's routes with `state`, and its description finished (title, the shared
/// components) and served at `/openapi.json`.
pub fn finish<S: Clone + Send + Sync + 'static>(service: &str, routes: OpenApiRouter<S>, state: S) -> Router {
    let (router, api) = routes.split_for_parts();
    let body = bytes::Bytes::from(serde_json::to_vec(&document(service, api)).expect("a description is JSON"));
    router
        .route("/openapi.json", axum::routing::get(move || async move { json_response(body.clone()) }))
        .with_state(state)
}

/// `api` as a whole OpenAPI 3.1 document of `service`.
pub fn document(service: &str, api: OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).expect("a description is JSON");
    doc["openapi"] = "3.1.0".into();
    doc["info"] = json!({
        "title": format!("cafe {service}"),
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!("The {service} service of the cafe. Errors are RFC 9457 problem+json; items and pages are HAL."),
    });
    let shared = components();
    let own = doc["components"].take();
    let mut merged = shared;
    if let Value::Object(own) = own {
        for (kind, entries) in own {
            match (merged.get_mut(&kind), entries) {
                (Some(Value::Object(into)), Value::Object(entries)) => into.extend(entries),
                (_, entries) => merged[kind.as_str()] = entries,
            }
        }
    }
    doc["components"] = merged;
    doc
}

/// The gateway's description: every service's public operations (none marked internal) in
/// one document, with their components.
pub fn public(title: &str, services: impl IntoIterator<Item = Value>) -> Value {
    let mut paths = Map::new();
    let mut components = components();
    for doc in services {
        if let Some(Value::Object(own)) = doc.get("paths") {
            for (path, item) in own {
                let Value::Object(item) = item else { continue };
                let public: Map<String, Value> = item
                    .iter()
                    .filter(|(_, op)| op.get(INTERNAL) != Some(&Value::Bool(true)))
                    .map(|(m, op)| (m.clone(), op.clone()))
                    .collect();
                if public.is_empty() {
                    continue;
                }
                match paths.get_mut(path) {
                    Some(Value::Object(existing)) => existing.extend(public),
                    _ => {
                        paths.insert(path.clone(), Value::Object(public));
                    }
                }
            }
        }
        if let Some(Value::Object(schemas)) = doc.pointer("/components/schemas") {
            if let Some(Value::Object(into)) = components.pointer_mut("/schemas") {
                into.extend(schemas.clone());
            }
        }
    }
    // Only the schemas the public operations use (not those of the internal calls).
    let paths = Value::Object(paths);
    if let Some(Value::Object(schemas)) = components.get_mut("schemas") {
        let mut used = BTreeSet::new();
        let mut pending: Vec<String> = references(&paths);
        while let Some(name) = pending.pop() {
            if used.insert(name.clone()) {
                pending.extend(schemas.get(&name).map(references).unwrap_or_default());
            }
        }
        schemas.retain(|name, _| used.contains(name) || matches!(name.as_str(), "Problem" | "Links" | "PageInfo"));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The cafe's public API, through the gateway. Sign in with `POST /auth/token` and send the token as `Authorization: Bearer`; each operation says which roles may call it. Errors are RFC 9457 problem+json; items and pages are HAL (`application/hal+json`).",
        },
        "paths": paths,
        "components": components,
    })
}

/// The names of the component schemas `value` refers to.
fn references(value: &Value) -> Vec<String> {
    const PREFIX: &str = "#/components/schemas/";
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, v)| match (key.as_str(), v) {
                ("$ref", Value::String(r)) => r.strip_prefix(PREFIX).map(String::from).into_iter().collect(),
                _ => references(v),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

/// A description as the answer to `GET /openapi.json`.
pub fn json_response(body: bytes::Bytes) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_the_path() {
        assert_eq!(operation_id(&HttpMethod::Get, "/orders/{id}"), "getOrdersById");
        assert_eq!(operation_id(&HttpMethod::Post, "/payments/voids"), "postPaymentsVoids");
    }
}
