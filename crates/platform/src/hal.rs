//! HAL rendering and paging, as Spring Data REST does it.
//!
//! Links are absolute and point where the client called: behind the gateway they carry the
//! gateway's host (`X-Forwarded-Host`, `-Proto`, `-Port`), otherwise the `Host` header.
//! Each resource supplies only its names and its sortable columns.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::problem::Problem;

pub const HAL_JSON: &str = "application/hal+json";
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 1000;
/// The deepest row a page may start at (`page × size`). An `OFFSET` is read and thrown away
/// row by row, so a page a billion rows deep would hold a connection for as long as the
/// database takes to skip them; no client pages that far through a cafe's lists, and one
/// that wants more narrows its query (a search) instead.
pub const MAX_PAGE_OFFSET: i64 = 100_000;

/// The absolute base URL the client used (`http://host:port`), and the path and query it asked for.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    pub base: String,
    pub path_and_query: String,
}

impl BaseUrl {
    pub fn href(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn from_headers(headers: &HeaderMap) -> String {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(host) = get("x-forwarded-host") {
            let proto = get("x-forwarded-proto").unwrap_or_else(|| "http".into());
            let host = match get("x-forwarded-port") {
                Some(port) if !host_has_port(&host) => {
                    let default = (proto == "http" && port == "80") || (proto == "https" && port == "443");
                    if default {
                        host
                    } else {
                        format!("{host}:{port}")
                    }
                }
                _ => host,
            };
            format!("{proto}://{host}")
        } else {
            let host = get(header::HOST.as_str()).unwrap_or_else(|| "localhost".into());
            format!("http://{host}")
        }
    }
}

fn host_has_port(host: &str) -> bool {
    match host.rfind(':') {
        Some(i) => !host.ends_with(']') && host[i + 1..].chars().all(|c| c.is_ascii_digit()),
        None => false,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(BaseUrl {
            base: Self::from_headers(&parts.headers),
            path_and_query: parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default(),
        })
    }
}

/// A resource kind: its collection path and relation names, and how it can be sorted.
pub struct Resource {
    /// Collection path and `_embedded` key, e.g. `orders`.
    pub collection: &'static str,
    /// The item's own relation name, e.g. `order`.
    pub rel: &'static str,
    /// JSON field name → SQL column, for `?sort=`.
    pub sortable: &'static [(&'static str, &'static str)],
}

impl Resource {
    pub fn item_href(&self, base: &BaseUrl, id: i64) -> String {
        base.href(&format!("/{}/{}", self.collection, id))
    }

    /// An item: its fields plus `_links.self` and `_links.<rel>`.
    pub fn item<T: Serialize>(&self, base: &BaseUrl, id: i64, fields: &T) -> Value {
        let mut v = serde_json::to_value(fields).unwrap_or(Value::Null);
        let href = self.item_href(base, id);
        if let Value::Object(map) = &mut v {
            let mut links = Map::new();
            links.insert("self".into(), json!({ "href": href }));
            links.insert(self.rel.into(), json!({ "href": href }));
            map.insert("_links".into(), Value::Object(links));
        }
        v
    }

    /// A page of items as `application/hal+json`, with `self`, `profile`, and paging links.
    pub fn page<T: Serialize>(&self, base: &BaseUrl, page: &PageRequest, items: &[(i64, T)], total: i64) -> Response {
        let total_pages = if total == 0 { 0 } else { (total + page.size - 1) / page.size };
        let mut links = Map::new();
        links.insert("self".into(), json!({ "href": base.href(&base.path_and_query) }));
        links.insert("profile".into(), json!({ "href": base.href(&format!("/profile/{}", self.collection)) }));
        let (path, query) = base.path_and_query.split_once('?').unwrap_or((&base.path_and_query, ""));
        // Paging links keep the request's other parameters (a search's, say).
        let kept: String = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| !matches!(p.split('=').next(), Some("page" | "size" | "sort")))
            .map(|p| format!("&{p}"))
            .collect();
        let link = |n: i64| {
            let mut q = format!("page={n}&size={}", page.size);
            if let Some(s) = &page.sort_param {
                q.push_str(&format!("&sort={s}"));
            }
            q.push_str(&kept);
            json!({ "href": base.href(&format!("{path}?{q}")) })
        };
        if total_pages > 0 {
            links.insert("first".into(), link(0));
            links.insert("last".into(), link(total_pages - 1));
        }
        if page.number > 0 && page.number < total_pages + 1 {
            links.insert("prev".into(), link(page.number - 1));
        }
        if page.number + 1 < total_pages {
            links.insert("next".into(), link(page.number + 1));
        }
        // The items are written straight into the body (no `Value` per item: a page of
        // them was most of a page read's allocations).
        let embedded: Vec<Item<'_, T>> = items
            .iter()
            .map(|(id, fields)| Item { fields, links: ItemLinks { rel: self.rel, href: self.item_href(base, *id) } })
            .collect();
        let body = PageBody {
            embedded: Single(self.collection, embedded),
            links,
            page: PageInfo { size: page.size, total_elements: total, total_pages, number: page.number },
        };
        let mut res = (StatusCode::OK, axum::Json(body)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL_JSON));
        res
    }

    /// [`Resource::page`] of `rows` as a store reads them, with how many there are in all;
    /// `id` names each row's item.
    pub fn page_of<T: Serialize>(
        &self,
        base: &BaseUrl,
        page: &PageRequest,
        (rows, total): (Vec<T>, i64),
        id: impl Fn(&T) -> i64,
    ) -> Response {
        let items: Vec<(i64, T)> = rows.into_iter().map(|row| (id(&row), row)).collect();
        self.page(base, page, &items, total)
    }

    /// The page `query` asks for (`?page=&size=&sort=`), as `read` reads it: its rows and
    /// how many there are in all. `id` names each row's item.
    pub async fn list<T: Serialize, E>(
        &self,
        base: &BaseUrl,
        query: Option<&str>,
        read: impl AsyncFnOnce(&PageRequest) -> Result<(Vec<T>, i64), E>,
        id: impl Fn(&T) -> i64,
    ) -> Result<Response, Problem>
    where
        Problem: From<E>,
    {
        let page = self.page_request(query)?;
        let rows = read(&page).await?;
        Ok(self.page_of(base, &page, rows, id))
    }

    /// An item written by a request that is safe to repeat: `201 Created` with `Location`
    /// when this request `created` it, `200 OK` with the item as it stands when an earlier one did.
    pub fn saved<T: Serialize>(&self, base: &BaseUrl, id: i64, fields: &T, created: bool) -> Response {
        let item = self.item(base, id, fields);
        if created {
            self::created(&self.item_href(base, id), item)
        } else {
            hal(StatusCode::OK, item)
        }
    }

    /// `200 OK` with one item.
    pub fn found<T: Serialize>(&self, base: &BaseUrl, id: i64, fields: &T) -> Response {
        hal(StatusCode::OK, self.item(base, id, fields))
    }

    /// Parses `?page=&size=&sort=` against this resource's sortable fields.
    pub fn page_request(&self, query: Option<&str>) -> Result<PageRequest, Problem> {
        PageRequest::parse(query.unwrap_or(""), self.sortable)
    }
}

/// A HAL response with a status.
/// An item of a page: its fields, then its `_links`.
#[derive(Serialize)]
struct Item<'a, T: Serialize> {
    #[serde(flatten)]
    fields: &'a T,
    #[serde(rename = "_links")]
    links: ItemLinks,
}

/// `{"self": {"href": h}, "<rel>": {"href": h}}`.
struct ItemLinks {
    rel: &'static str,
    href: String,
}

impl Serialize for ItemLinks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Href<'a> {
            href: &'a str,
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("self", &Href { href: &self.href })?;
        map.serialize_entry(self.rel, &Href { href: &self.href })?;
        map.end()
    }
}

/// A map of one entry whose key is known only at run time.
struct Single<V>(&'static str, V);

impl<V: Serialize> Serialize for Single<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

#[derive(Serialize)]
struct PageBody<'a, T: Serialize> {
    #[serde(rename = "_embedded")]
    embedded: Single<Vec<Item<'a, T>>>,
    #[serde(rename = "_links")]
    links: Map<String, Value>,
    page: PageInfo,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    size: i64,
    total_elements: i64,
    total_pages: i64,
    number: i64,
}

pub fn hal(status: StatusCode, body: Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL_JSON));
    res
}

/// `201 Created` with `Location` and the item.
pub fn created(location: &str, body: Value) -> Response {
    let mut res = hal(StatusCode::CREATED, body);
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A validated page request. `order_by` is safe to splice into SQL: it only ever holds
/// whitelisted column names.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub number: i64,
    pub size: i64,
    pub order_by: String,
    sort_param: Option<String>,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        self.number.saturating_mul(self.size)
    }

    pub fn parse(query: &str, sortable: &[(&str, &str)]) -> Result<Self, Problem> {
        let mut number = 0;
        let mut size = DEFAULT_PAGE_SIZE;
        let mut order = Vec::new();
        let mut sort_params = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "page" => {
                    number = v.parse::<i64>().ok().filter(|n| (0..=1_000_000_000).contains(n)).ok_or_else(|| {
                        Problem::validation(vec![crate::problem::FieldError {
                            field: "page".into(),
                            message: "must be a whole number, 0 or more".into(),
                        }])
                    })?
                }
                "size" => {
                    size = v.parse::<i64>().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                        Problem::validation(vec![crate::problem::FieldError {
                            field: "size".into(),
                            message: format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                        }])
                    })?
                }
                "sort" => {
                    let mut parts = v.split(',');
                    let field = parts.next().unwrap_or("").trim();
                    let dir = match parts.next().map(|d| d.trim().to_ascii_lowercase()) {
                        None => "ASC",
                        Some(d) if d == "asc" => "ASC",
                        Some(d) if d == "desc" => "DESC",
                        Some(_) => {
                            return Err(Problem::validation(vec![crate::problem::FieldError {
                                field: "sort".into(),
                                message: "direction must be asc or desc".into(),
                            }]))
                        }
                    };
                    let col = sortable.iter().find(|(f, _)| *f == field).map(|(_, c)| *c).ok_or_else(|| {
                        let names: Vec<&str> = sortable.iter().map(|(f, _)| *f).collect();
                        Problem::validation(vec![crate::problem::FieldError {
                            field: "sort".into(),
                            message: format!("cannot sort by '{field}'; sortable: {}", names.join(", ")),
                        }])
                    })?;
                    order.push(format!("{col} {dir}"));
                    sort_params.push(v.into_owned());
                }
                _ => {}
            }
        }
        // Checked once both are known: `page` and `size` may come in either order.
        if number.saturating_mul(size) > MAX_PAGE_OFFSET {
            return Err(Problem::validation(vec![crate::problem::FieldError {
                field: "page".into(),
                message: format!(
                    "must be at most {} with size {size}: pages start at most {MAX_PAGE_OFFSET} rows deep",
                    MAX_PAGE_OFFSET / size
                ),
            }]));
        }
        order.push("id ASC".into());
        Ok(PageRequest {
            number,
            size,
            order_by: order.join(", "),
            sort_param: if sort_params.is_empty() { None } else { Some(sort_params.join("&sort=")) },
        })
    }
}

/// A required query parameter of a search endpoint.
pub fn query_param(query: Option<&str>, name: &str) -> Result<String, Problem> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Problem::validation(vec![crate::problem::FieldError { field: name.into(), message: "is required".into() }])
        })
}

/// A required positive-integer query parameter.
pub fn query_id(query: Option<&str>, name: &str) -> Result<i64, Problem> {
    let v = query_param(query, name)?;
    v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        Problem::validation(vec![crate::problem::FieldError {
            field: name.into(),
            message: "must be a positive whole number".into(),
        }])
    })
}

/// The `{id}` of an item path. Anything that is not a positive integer names no item: 404.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, Problem> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| Problem::not_found(format!("no {what} with id '{raw}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORT: &[(&str, &str)] = &[("createTime", "create_time"), ("id", "id")];

    #[test]
    fn page_request_defaults_and_sorts() {
        let p = PageRequest::parse("", SORT).unwrap();
        assert_eq!((p.number, p.size, p.order_by.as_str()), (0, 20, "id ASC"));
        let p = PageRequest::parse("page=2&size=5&sort=createTime,desc", SORT).unwrap();
        assert_eq!((p.number, p.size, p.offset()), (2, 5, 10));
        assert_eq!(p.order_by, "create_time DESC, id ASC");
    }

    #[test]
    fn page_request_refuses_bad_values() {
        for q in ["page=-1", "size=0", "size=1001", "size=x", "sort=password", "sort=id,sideways"] {
            assert_eq!(PageRequest::parse(q, SORT).unwrap_err().status, 400, "{q}");
        }
    }

    #[test]
    fn a_page_deeper_than_the_bound_is_refused_naming_page() {
        let last = PageRequest::parse("size=1000&page=100", SORT).unwrap();
        assert_eq!(last.offset(), MAX_PAGE_OFFSET);
        assert_eq!(PageRequest::parse("page=5000", SORT).unwrap().offset(), MAX_PAGE_OFFSET);
        for q in ["size=1000&page=101", "page=101&size=1000", "page=5001", "page=1000000000&size=1000"] {
            let p = PageRequest::parse(q, SORT).unwrap_err();
            assert_eq!((p.status, p.fields()), (400, vec!["page"]), "{q}");
            assert!(p.errors[0].message.contains("100000 rows deep"), "{q}: {}", p.errors[0].message);
        }
        let p = PageRequest::parse("size=1000&page=101", SORT).unwrap_err();
        assert_eq!(p.errors[0].message, "must be at most 100 with size 1000: pages start at most 100000 rows deep");
    }

    #[test]
    fn forwarded_headers_win() {
        let mut h = HeaderMap::new();
        h.insert("host", "order:8081".parse().unwrap());
        assert_eq!(BaseUrl::from_headers(&h), "http://order:8081");
        h.insert("x-forwarded-host", "cafe.example".parse().unwrap());
        h.insert("x-forwarded-port", "8080".parse().unwrap());
        assert_eq!(BaseUrl::from_headers(&h), "http://cafe.example:8080");
        h.insert("x-forwarded-host", "cafe.example:9000".parse().unwrap());
        assert_eq!(BaseUrl::from_headers(&h), "http://cafe.example:9000");
    }

    #[test]
    fn decodes_queries() {
        assert_eq!(query_param(Some("a=1&b=x%20y+z"), "b").unwrap(), "x y z");
        assert_eq!(query_param(Some("b=%zz%4"), "b").unwrap(), "%zz%4", "a bad escape stays as written");
        assert_eq!(query_param(Some("&&b=1&b=2"), "b").unwrap(), "1", "the first of repeated parameters");
        assert_eq!(query_param(Some("b="), "b").unwrap_err().status, 400);
        let p = PageRequest::parse("sort=createTime%2Cdesc&page=%31", SORT).unwrap();
        assert_eq!((p.number, p.order_by.as_str()), (1, "create_time DESC, id ASC"));
    }
}
