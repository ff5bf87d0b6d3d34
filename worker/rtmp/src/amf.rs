//! AMF0, the encoding of RTMP commands and data messages: the writers our commands need and a
//! reader for the servers' replies. Only the types RTMP servers send are read (number, boolean,
//! string, object, null, undefined, ECMA array, strict array, date, long string); anything else
//! stops the reader, which callers treat as the end of the values.

/// Type markers, from the AMF0 specification (section 2.1).
const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;

/// Deepest nesting of objects and arrays read: keeps a hostile reply from exhausting the stack.
const MAX_DEPTH: usize = 16;

pub(crate) fn write_number(out: &mut Vec<u8>, value: f64) {
    out.push(NUMBER);
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(&[BOOLEAN, u8::from(value)]);
}

/// A string value; longer than 65535 bytes is cut there (our strings are URL parts).
pub(crate) fn write_string(out: &mut Vec<u8>, value: &str) {
    out.push(STRING);
    write_key(out, value);
}

pub(crate) fn write_null(out: &mut Vec<u8>) {
    out.push(NULL);
}

pub(crate) fn write_object_start(out: &mut Vec<u8>) {
    out.push(OBJECT);
}

/// A property name inside an object (a string without its type marker).
pub(crate) fn write_key(out: &mut Vec<u8>, key: &str) {
    let bytes = &key.as_bytes()[..key.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn write_object_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// One decoded value; strings borrow the message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Number(f64),
    Boolean(bool),
    String(&'a [u8]),
    Object(Vec<(&'a [u8], Value<'a>)>),
    Null,
    Undefined,
    EcmaArray(Vec<(&'a [u8], Value<'a>)>),
    StrictArray(Vec<Value<'a>>),
    Date(f64),
}

impl<'a> Value<'a> {
    pub(crate) fn as_str(&self) -> Option<&'a [u8]> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or ECMA array.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// Why a value could not be read (the bytes end early, or a type we do not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Reads values one after another from a message body.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn value(&mut self) -> Result<Value<'a>, Malformed> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value<'a>, Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        Ok(match self.byte()? {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => Value::Boolean(self.byte()? != 0),
            STRING => Value::String(self.short_string()?),
            LONG_STRING => {
                let len = u32::from_be_bytes(self.array()?) as usize;
                Value::String(self.take(len)?)
            }
            OBJECT => Value::Object(self.properties(depth)?),
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            // The count is a hint only: the properties end with the object-end marker.
            ECMA_ARRAY => {
                self.take(4)?;
                Value::EcmaArray(self.properties(depth)?)
            }
            STRICT_ARRAY => {
                let count = u32::from_be_bytes(self.array()?);
                // No capacity from the untrusted count: every element takes at least a byte.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value_at(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            DATE => {
                let millis = self.f64()?;
                self.take(2)?; // time zone, unused by the specification
                Value::Date(millis)
            }
            _ => return Err(Malformed),
        })
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(&'a [u8], Value<'a>)>, Malformed> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.data.first() == Some(&OBJECT_END) {
                self.take(1)?;
                return Ok(props);
            }
            let value = self.value_at(depth + 1)?;
            props.push((key, value));
        }
    }

    fn short_string(&mut self) -> Result<&'a [u8], Malformed> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }

    fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.data.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_values_read_back() {
        let mut out = Vec::new();
        write_string(&mut out, "_result");
        write_number(&mut out, 2.0);
        write_null(&mut out);
        write_object_start(&mut out);
        write_key(&mut out, "code");
        write_string(&mut out, "NetStream.Play.Start");
        write_key(&mut out, "ok");
        write_bool(&mut out, true);
        write_object_end(&mut out);

        let mut reader = Reader::new(&out);
        assert_eq!(reader.value(), Ok(Value::String(b"_result")));
        assert_eq!(reader.value(), Ok(Value::Number(2.0)));
        assert_eq!(reader.value(), Ok(Value::Null));
        let info = reader.value().unwrap();
        assert_eq!(info.get("code").and_then(Value::as_str), Some(&b"NetStream.Play.Start"[..]));
        assert_eq!(info.get("ok"), Some(&Value::Boolean(true)));
        assert!(reader.is_empty());
    }

    #[test]
    fn reads_ecma_and_strict_arrays_dates_long_strings_and_undefined() {
        let mut out = vec![ECMA_ARRAY, 0, 0, 0, 1];
        write_key(&mut out, "duration");
        write_number(&mut out, 4.0);
        write_object_end(&mut out);
        out.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 2, UNDEFINED, NULL]);
        out.push(DATE);
        out.extend_from_slice(&1.5f64.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&[LONG_STRING, 0, 0, 0, 3]);
        out.extend_from_slice(b"abc");

        let mut reader = Reader::new(&out);
        assert_eq!(reader.value().unwrap().get("duration"), Some(&Value::Number(4.0)));
        assert_eq!(reader.value(), Ok(Value::StrictArray(vec![Value::Undefined, Value::Null])));
        assert_eq!(reader.value(), Ok(Value::Date(1.5)));
        assert_eq!(reader.value(), Ok(Value::String(b"abc")));
        assert!(reader.is_empty());
    }

    #[test]
    fn truncated_huge_and_deeply_nested_values_are_malformed() {
        assert_eq!(Reader::new(&[STRING, 0, 5, b'a']).value(), Err(Malformed));
        assert_eq!(Reader::new(&[STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL]).value(), Err(Malformed));
        assert_eq!(Reader::new(&[0x11, 0]).value(), Err(Malformed));
        let mut nested = Vec::new();
        for _ in 0..100 {
            nested.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        assert_eq!(Reader::new(&nested).value(), Err(Malformed));
    }
}
