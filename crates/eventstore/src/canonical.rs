//! Canonical JSON (the rules are in `hash.rs`): from a `serde_json::Value`, or straight from any
//! `Serialize` type without building a `Value` first.
//!
//! [`to_canonical_string`] writes the canonical text once, in one buffer, and that text is both hashed
//! and sent.

use std::borrow::Cow;
use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};
use serde_json::{Number, Value};

/// JSON text in canonical form: the form an event's payload is hashed in, sent in and compared in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalJson(String);

impl CanonicalJson {
    pub fn from_value(value: &Value) -> Self {
        Self(canonical_json(value))
    }

    /// The canonical text of `value`, equal to `from_value(&serde_json::to_value(value)?)`, written
    /// without building the `Value`.
    pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        to_canonical_string(value).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The text parsed back into a `Value`.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl From<Value> for CanonicalJson {
    fn from(value: Value) -> Self {
        Self::from_value(&value)
    }
}

impl From<&Value> for CanonicalJson {
    fn from(value: &Value) -> Self {
        Self::from_value(value)
    }
}

impl PartialEq<Value> for CanonicalJson {
    fn eq(&self, other: &Value) -> bool {
        self.0 == canonical_json(other)
    }
}

impl PartialEq<CanonicalJson> for Value {
    fn eq(&self, other: &CanonicalJson) -> bool {
        other == self
    }
}

impl std::fmt::Display for CanonicalJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Canonical JSON text of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

/// Canonical JSON text of `value`, equal to `canonical_json(&serde_json::to_value(value)?)`.
///
/// The few shapes where serialising directly could differ from going through a `Value` (keys written
/// twice in one object, float map keys, integers beyond 64 bits, raw or arbitrary-precision numbers) take
/// the `Value` path, so the result is always that text.
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    match write_direct(value)? {
        Some(text) => {
            String::from_utf8(text).map_err(|_| unsupported("the canonical text is not UTF-8"))
        }
        None => Ok(canonical_json(&serde_json::to_value(value)?)),
    }
}

/// The canonical text written directly; `None` when the value needs the `Value` path.
fn write_direct<T: Serialize + ?Sized>(value: &T) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let written = {
        let formatter = Canonical {
            out: &mut out,
            frames: Vec::new(),
            entries: Vec::new(),
            scratch: Vec::new(),
            in_key: false,
        };
        let mut serializer = serde_json::Serializer::with_formatter(io::sink(), formatter);
        value.serialize(&mut serializer)
    };
    match written {
        Ok(()) => Ok(Some(out)),
        // The sink never fails: an I/O error is the formatter asking for the `Value` path.
        Err(e) if e.is_io() => Ok(None),
        Err(e) => Err(e),
    }
}

fn unsupported(what: &str) -> serde_json::Error {
    serde_json::Error::io(io::Error::other(what.to_owned()))
}

fn fallback() -> io::Error {
    io::Error::other("not written directly in canonical form")
}

/// A `serde_json` formatter that writes canonical JSON into its own buffer (the serializer's writer is a
/// sink): an object's entries are written as they come and put in key order when the object ends.
struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    /// The objects being written, innermost last.
    frames: Vec<Frame>,
    /// The finished entries of every open object; each frame owns those from its `entries_from` on.
    entries: Vec<Entry>,
    /// Where an object's entries are copied while they are put in order.
    scratch: Vec<u8>,
    /// Between the start and the end of an object key.
    in_key: bool,
}

struct Frame {
    /// The first byte after the object's `{`.
    start: usize,
    entries_from: usize,
    /// The entry being written: where its key starts and ends.
    key_start: usize,
    key_end: usize,
}

/// An entry's bytes: `"key":value`, with the key (quotes included) ending at `key_end`.
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    key_end: usize,
    end: usize,
}

impl Canonical<'_> {
    fn frame(&mut self) -> io::Result<&mut Frame> {
        self.frames.last_mut().ok_or_else(fallback)
    }

    fn write_float(&mut self, value: f64) -> io::Result<()> {
        if self.in_key {
            // serde_json writes float keys with its own float text; a Value keeps that text.
            return Err(fallback());
        }
        let mut text = String::new();
        write_float(&mut text, value);
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    fn write_integer(&mut self, value: impl itoa_like::Integer) -> io::Result<()> {
        value.write(self.out);
        Ok(())
    }

    /// Rewrites the entries of the object that `frame` opened in key order, unless they are already.
    fn put_in_key_order(&mut self, frame: &Frame) -> io::Result<()> {
        let entries = &mut self.entries[frame.entries_from..];
        if in_key_order(self.out, entries) {
            return Ok(());
        }
        let out = &*self.out;
        entries.sort_by(|a, b| {
            raw_key(&out[a.start..a.key_end]).cmp(&raw_key(&out[b.start..b.key_end]))
        });
        if !in_key_order(self.out, entries) {
            // Equal keys: a Value keeps the last of them; leave that to it.
            return Err(fallback());
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.out[frame.start..]);
        self.out.truncate(frame.start);
        for (i, entry) in entries.iter().enumerate() {
            separate(self.out, i == 0);
            self.out.extend_from_slice(
                &self.scratch[entry.start - frame.start..entry.end - frame.start],
            );
        }
        Ok(())
    }
}

/// Integers as plain decimal text, without going through `format!`.
mod itoa_like {
    pub trait Integer: Copy {
        fn write(self, out: &mut Vec<u8>);
    }

    macro_rules! integer {
        ($($t:ty),*) => {$(
            impl Integer for $t {
                fn write(self, out: &mut Vec<u8>) {
                    use std::io::Write;
                    // Writing to a Vec cannot fail.
                    let _ = write!(out, "{self}");
                }
            }
        )*};
    }

    integer!(i8, i16, i32, i64, i128, u8, u16, u32, u64, u128);
}

/// `Formatter` methods that write an integer of the type they are named after as it is.
macro_rules! integer_writers {
    ($($name:ident: $type:ty),* $(,)?) => {
        $(
            fn $name<W: ?Sized + io::Write>(&mut self, _: &mut W, value: $type) -> io::Result<()> {
                self.write_integer(value)
            }
        )*
    };
}

/// `Formatter` methods that write a fixed text, the same in canonical form as in any other.
macro_rules! fixed_writers {
    ($($name:ident: $text:expr),* $(,)?) => {
        $(
            fn $name<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
                self.out.extend_from_slice($text);
                Ok(())
            }
        )*
    };
}

impl Formatter for Canonical<'_> {
    fixed_writers!(
        write_null: b"null",
        begin_string: b"\"",
        end_string: b"\"",
        begin_array: b"[",
        end_array: b"]",
        begin_object_value: b":",
    );

    fn write_bool<W: ?Sized + io::Write>(&mut self, _: &mut W, value: bool) -> io::Result<()> {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }

    integer_writers!(
        write_i8: i8,
        write_i16: i16,
        write_i32: i32,
        write_i64: i64,
        write_u8: u8,
        write_u16: u16,
        write_u32: u32,
        write_u64: u64,
    );

    fn write_i128<W: ?Sized + io::Write>(&mut self, _: &mut W, value: i128) -> io::Result<()> {
        // A Value holds only 64-bit integers; beyond them `to_value` decides.
        match i64::try_from(value) {
            Ok(value) => self.write_integer(value),
            Err(_) => match u64::try_from(value) {
                Ok(value) => self.write_integer(value),
                Err(_) => Err(fallback()),
            },
        }
    }

    fn write_u128<W: ?Sized + io::Write>(&mut self, _: &mut W, value: u128) -> io::Result<()> {
        match u64::try_from(value) {
            Ok(value) => self.write_integer(value),
            Err(_) => Err(fallback()),
        }
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, _: &mut W, value: f32) -> io::Result<()> {
        self.write_float(f64::from(value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, _: &mut W, value: f64) -> io::Result<()> {
        self.write_float(value)
    }

    fn write_number_str<W: ?Sized + io::Write>(&mut self, _: &mut W, _: &str) -> io::Result<()> {
        Err(fallback())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.out.extend_from_slice(fragment.as_bytes());
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let control = match escape {
            CharEscape::Quote => {
                self.out.extend_from_slice(b"\\\"");
                return Ok(());
            }
            CharEscape::ReverseSolidus => {
                self.out.extend_from_slice(b"\\\\");
                return Ok(());
            }
            CharEscape::Solidus => {
                self.out.push(b'/');
                return Ok(());
            }
            CharEscape::Backspace => 0x08,
            CharEscape::FormFeed => 0x0c,
            CharEscape::LineFeed => 0x0a,
            CharEscape::CarriageReturn => 0x0d,
            CharEscape::Tab => 0x09,
            CharEscape::AsciiControl(byte) => byte,
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(control >> 4)],
            HEX[usize::from(control & 0xf)],
        ]);
        Ok(())
    }

    fn write_byte_array<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        value: &[u8],
    ) -> io::Result<()> {
        self.out.push(b'[');
        for (i, byte) in value.iter().enumerate() {
            separate(self.out, i == 0);
            itoa_like::Integer::write(*byte, self.out);
        }
        self.out.push(b']');
        Ok(())
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separate(self.out, first);
        Ok(())
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b'{');
        self.frames.push(Frame {
            start: self.out.len(),
            entries_from: self.entries.len(),
            key_start: 0,
            key_end: 0,
        });
        Ok(())
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        let frame = self.frames.pop().ok_or_else(fallback)?;
        self.put_in_key_order(&frame)?;
        self.entries.truncate(frame.entries_from);
        self.out.push(b'}');
        Ok(())
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separate(self.out, first);
        let start = self.out.len();
        self.frame()?.key_start = start;
        self.in_key = true;
        Ok(())
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        let end = self.out.len();
        self.frame()?.key_end = end;
        self.in_key = false;
        Ok(())
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        let end = self.out.len();
        let frame = self.frame()?;
        let entry = Entry {
            start: frame.key_start,
            key_end: frame.key_end,
            end,
        };
        self.entries.push(entry);
        Ok(())
    }

    fn write_raw_fragment<W: ?Sized + io::Write>(&mut self, _: &mut W, _: &str) -> io::Result<()> {
        Err(fallback())
    }
}

/// The comma before every element of an array or entry of an object but the first.
fn separate(out: &mut Vec<u8>, first: bool) {
    if !first {
        out.push(b',');
    }
}

/// Whether the entries' keys ascend strictly.
fn in_key_order(out: &[u8], entries: &[Entry]) -> bool {
    entries
        .windows(2)
        .all(|w| raw_key(&out[w[0].start..w[0].key_end]) < raw_key(&out[w[1].start..w[1].key_end]))
}

/// The UTF-8 bytes of a key written in canonical form (quotes included): keys sort by these.
fn raw_key(written: &[u8]) -> Cow<'_, [u8]> {
    let inner = written
        .strip_prefix(b"\"")
        .and_then(|k| k.strip_suffix(b"\""))
        .unwrap_or(written);
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    let mut raw = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            raw.push(byte);
            continue;
        }
        match rest.split_first() {
            // `\u00xx`: a control character.
            Some((b'u', tail)) if tail.len() >= 4 => {
                let hex = std::str::from_utf8(&tail[..4]).unwrap_or("0");
                raw.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                rest = &tail[4..];
            }
            Some((&escaped, tail)) => {
                raw.push(escaped);
                rest = tail;
            }
            None => {}
        }
    }
    Cow::Owned(raw)
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here rather than trusting the map: with serde_json's `preserve_order` feature switched
            // on anywhere in the build, the map would keep insertion order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, number: &Number) {
    if let Some(n) = number.as_i64() {
        out.push_str(&n.to_string());
    } else if let Some(n) = number.as_u64() {
        out.push_str(&n.to_string());
    } else if let Some(f) = number.as_f64() {
        write_float(out, f);
    } else {
        // Only reachable with serde_json's `arbitrary_precision`, for numbers beyond f64.
        out.push_str(&number.to_string());
    }
}

fn write_float(out: &mut String, f: f64) {
    // 2^63 and 2^64 are exact in f64.
    const MIN_INTEGER: f64 = -9_223_372_036_854_775_808.0;
    const END_INTEGER: f64 = 18_446_744_073_709_551_616.0;
    // jsonb prints an integral float without a fraction (or keeps `.0`), and serde_json reads such text
    // back as an integer when it fits: writing integral values as integers makes both agree.
    if f.fract() == 0.0 && (MIN_INTEGER..END_INTEGER).contains(&f) {
        out.push_str(&(f as i128).to_string());
    } else {
        out.push_str(&format!("{f:e}"));
    }
}

pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    #[test]
    fn object_keys_are_sorted_at_every_depth() {
        let value = parse(r#"{"b": {"z": 1, "a": [ {"y": null, "x": false} ]}, "a": "s"}"#);
        assert_eq!(
            canonical_json(&value),
            r#"{"a":"s","b":{"a":[{"x":false,"y":null}],"z":1}}"#
        );
    }

    #[test]
    fn keys_sort_by_bytes_not_by_length_as_jsonb_does() {
        let value = parse(r#"{"bb": 1, "a": 2, "B": 3}"#);
        assert_eq!(canonical_json(&value), r#"{"B":3,"a":2,"bb":1}"#);
    }

    #[test]
    fn integral_numbers_have_one_form_however_they_were_written() {
        for text in ["1000", "1000.0", "1e3", "1E+3", "1000.000"] {
            assert_eq!(canonical_json(&parse(text)), "1000", "{text}");
        }
        // jsonb prints 1e15 as a plain integer, which serde_json then reads as u64.
        assert_eq!(
            canonical_json(&parse("1e15")),
            canonical_json(&parse("1000000000000000"))
        );
        assert_eq!(canonical_json(&parse("-0.0")), "0");
        assert_eq!(
            canonical_json(&parse("-9223372036854775808")),
            "-9223372036854775808"
        );
        assert_eq!(
            canonical_json(&parse("18446744073709551615")),
            "18446744073709551615"
        );
    }

    #[test]
    fn fractions_and_huge_numbers_use_shortest_exponent_form() {
        assert_eq!(canonical_json(&parse("0.1")), "1e-1");
        assert_eq!(canonical_json(&parse("1.5e-7")), "1.5e-7");
        assert_eq!(canonical_json(&parse("0.00000015")), "1.5e-7");
        assert_eq!(canonical_json(&parse("-2.5")), "-2.5e0");
        assert_eq!(canonical_json(&parse("1e300")), "1e300");
        // 2^64 no longer fits an integer, as jsonb's plain-digit output of it would not either.
        assert_eq!(
            canonical_json(&parse("18446744073709551616")),
            "1.8446744073709552e19"
        );
    }

    #[test]
    fn strings_escape_only_quotes_backslashes_and_control_characters() {
        let value = Value::String("a\"b\\c\n\t\u{1}é€/😀\u{7f}".to_owned());
        assert_eq!(
            canonical_json(&value),
            "\"a\\\"b\\\\c\\u000a\\u0009\\u0001é€/😀\u{7f}\""
        );
    }

    /// Written directly, then through a `Value`: both must give the same text.
    fn both_ways<T: Serialize>(value: &T) -> (String, String) {
        let direct = to_canonical_string(value).expect("direct");
        let via_value = canonical_json(&serde_json::to_value(value).expect("to_value"));
        (direct, via_value)
    }

    #[test]
    fn writing_directly_gives_the_text_of_the_value() {
        let samples = [
            json!({"zeta": 1, "alpha": {"b": [1, 2.5, -0.0], "a": null}, "long_key_first": true,
                   "integral_float": 1e15, "tiny": 1.5e-7, "huge": 1e300, "u64": u64::MAX, "i64": i64::MIN,
                   "text": "quote \" backslash \\ newline \n tab \t é 😀 \u{1f} \u{7f} /"}),
            json!([{"b": {"d": 1, "c": [{"z": 0, "y": 1}]}, "a": []}, {}, [], "", 0]),
            json!({"a\"b": 1, "a": 2, "a\\": 3, "a\n": 4, "B": 5, "bb": 6}),
            json!("just a string"),
            json!(null),
        ];
        for sample in &samples {
            let (direct, via_value) = both_ways(sample);
            assert_eq!(direct, via_value);
        }
    }

    #[test]
    fn structs_and_maps_are_sorted_as_their_values_are() {
        #[derive(Serialize)]
        struct Inner {
            zulu: Option<u8>,
            alpha: f64,
        }
        #[derive(Serialize)]
        struct Outer {
            second: Vec<Inner>,
            first: std::collections::HashMap<u32, &'static str>,
            bytes: &'static [u8],
            big: i128,
            huge: u128,
        }
        let value = Outer {
            second: vec![
                Inner {
                    zulu: None,
                    alpha: 0.1,
                },
                Inner {
                    zulu: Some(7),
                    alpha: 3.0,
                },
            ],
            first: [(10, "ten"), (9, "nine"), (100, "hundred")]
                .into_iter()
                .collect(),
            bytes: b"ab",
            big: -5,
            huge: u128::from(u64::MAX),
        };
        let (direct, via_value) = both_ways(&value);
        assert_eq!(direct, via_value);
    }

    #[test]
    fn shapes_a_value_decides_take_the_value_path() {
        // Beyond 64 bits a Value cannot hold the integer, and to_value fails: so does this.
        assert!(to_canonical_string(&(i128::from(u64::MAX) + 1)).is_err());
        let float_keys: std::collections::BTreeMap<String, f64> =
            [("1.5".to_owned(), 1.5)].into_iter().collect();
        let (direct, via_value) = both_ways(&float_keys);
        assert_eq!(direct, via_value);
    }
}
