//! A client of the admin API: requests with a key, and the status a test
//! expects of them.

use serde_json::Value;

use super::node::{Response, RunningNode, request};

/// A client of the admin API with one key (or none).
pub struct Api<'a> {
    pub node: &'a RunningNode,
    pub key: Option<String>,
}

impl<'a> Api<'a> {
    pub fn new(node: &'a RunningNode, key: &str) -> Self {
        Api {
            node,
            key: Some(key.to_owned()),
        }
    }

    pub fn send(&self, method: &str, path: &str, body: &str) -> Response {
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        request(self.node.addr, method, path, &headers, body.as_bytes())
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, "")
    }

    /// A request that must answer `status`; its JSON body (null if none).
    pub fn expect(&self, method: &str, path: &str, body: Value, status: u16) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let response = self.send(method, path, &body);
        assert_eq!(
            response.status,
            status,
            "{method} {path}: {}",
            response.text()
        );
        if response.body.is_empty() {
            Value::Null
        } else {
            response.json()
        }
    }
}
