//! Reading a command's `arguments` the way QEMU's QAPI input visitor does:
//! members in schema order ("Parameter 'x' is missing", "Invalid
//! parameter type for 'x', expected: string"), then anything left over is
//! "Parameter 'y' is unexpected". Nested objects name members with a
//! dotted path (`backend.data.out`).
#![forbid(unsafe_code)]

use serde_json::{Map, Value};

use super::error::QmpError;

/// The arguments of one command (or one nested object of them).
#[derive(Debug, Default)]
pub struct Args {
    map: Map<String, Value>,
    prefix: String,
}

impl Args {
    pub fn new(map: Map<String, Value>) -> Self {
        Args {
            map,
            prefix: String::new(),
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>, QmpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(QmpError::wrong_type(&self.path(key), "string")),
        }
    }

    pub fn str(&mut self, key: &str) -> Result<String, QmpError> {
        self.opt_str(key)?
            .ok_or_else(|| QmpError::missing(&self.path(key)))
    }

    pub fn opt_i64(&mut self, key: &str) -> Result<Option<i64>, QmpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(_) => Err(QmpError::wrong_type(&self.path(key), "integer")),
        }
    }

    pub fn i64(&mut self, key: &str) -> Result<i64, QmpError> {
        self.opt_i64(key)?
            .ok_or_else(|| QmpError::missing(&self.path(key)))
    }

    pub fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, QmpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(QmpError::wrong_type(&self.path(key), "boolean")),
        }
    }

    pub fn bool(&mut self, key: &str) -> Result<bool, QmpError> {
        self.opt_bool(key)?
            .ok_or_else(|| QmpError::missing(&self.path(key)))
    }

    pub fn opt_list(&mut self, key: &str) -> Result<Option<Vec<Value>>, QmpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(QmpError::wrong_type(&self.path(key), "array")),
        }
    }

    pub fn opt_object(&mut self, key: &str) -> Result<Option<Args>, QmpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Args {
                map,
                prefix: format!("{}.", self.path(key)),
            })),
            Some(_) => Err(QmpError::wrong_type(&self.path(key), "object")),
        }
    }

    pub fn object(&mut self, key: &str) -> Result<Args, QmpError> {
        self.opt_object(key)?
            .ok_or_else(|| QmpError::missing(&self.path(key)))
    }

    /// An enum member: the value must be one of `allowed`. QEMU names a
    /// union's discriminator without its path; so do we.
    pub fn choice<'a>(&mut self, key: &str, allowed: &[&'a str]) -> Result<&'a str, QmpError> {
        let s = self.str(key)?;
        allowed
            .iter()
            .find(|a| **a == s)
            .copied()
            .ok_or_else(|| QmpError::bad_value(key, &s))
    }

    /// Ends the visit: any member not read is unexpected.
    pub fn finish(self) -> Result<(), QmpError> {
        match self.map.keys().next() {
            Some(k) => Err(QmpError::unexpected(&self.path(k))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Args {
        match v {
            Value::Object(m) => Args::new(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn qapi_visitor_errors() {
        assert_eq!(
            args(json!({})).str("fdname").unwrap_err().desc,
            "Parameter 'fdname' is missing"
        );
        assert_eq!(
            args(json!({"fdname": 5})).str("fdname").unwrap_err().desc,
            "Invalid parameter type for 'fdname', expected: string"
        );
        assert_eq!(
            args(json!({"fdset-id": 1.5}))
                .opt_i64("fdset-id")
                .unwrap_err()
                .desc,
            "Invalid parameter type for 'fdset-id', expected: integer"
        );
        assert_eq!(
            args(json!({"fdset-id": "1"}))
                .opt_i64("fdset-id")
                .unwrap_err()
                .desc,
            "Invalid parameter type for 'fdset-id', expected: integer"
        );
        let mut a = args(json!({"x": 1}));
        assert_eq!(a.opt_str("fdname").unwrap(), None);
        assert_eq!(a.finish().unwrap_err().desc, "Parameter 'x' is unexpected");
    }

    #[test]
    fn nested_paths() {
        let mut a = args(json!({"backend": {"type": "file", "data": {"zz": 1}}}));
        let mut backend = a.object("backend").unwrap();
        assert_eq!(backend.choice("type", &["file", "socket"]).unwrap(), "file");
        let mut data = backend.object("data").unwrap();
        assert_eq!(
            data.str("out").unwrap_err().desc,
            "Parameter 'backend.data.out' is missing"
        );
        assert_eq!(
            data.finish().unwrap_err().desc,
            "Parameter 'backend.data.zz' is unexpected"
        );
        let mut b = args(json!({"backend": {"type": "nope"}}));
        assert_eq!(
            b.object("backend")
                .unwrap()
                .choice("type", &["file"])
                .unwrap_err()
                .desc,
            "Parameter 'type' does not accept value 'nope'"
        );
    }
}
