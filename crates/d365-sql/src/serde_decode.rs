//! The first version of the page decoder: serde's streaming visitors appending straight into
//! the Arrow builders. Kept (hidden) so `benches/decode.rs` can compare it with the
//! scanner-based [`PageDecoder::decode`](crate::arrow_decode::PageDecoder::decode), which is
//! faster; results are identical.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::arrow_decode::{Builder, PageDecoder};
use crate::values::{parse_date_days, parse_decimal, parse_timestamp_micros};

/// Decodes the first `max_rows` rows of `body` into `builders`; returns the row count.
pub(crate) fn decode_rows(
    dec: &PageDecoder,
    body: &[u8],
    builders: &mut [Builder],
    max_rows: usize,
) -> Result<usize, serde_json::Error> {
    let mut rows = 0usize;
    let mut de = serde_json::Deserializer::from_slice(body);
    PageSeed { dec, builders, rows: &mut rows, max_rows }.deserialize(&mut de)?;
    de.end()?;
    Ok(rows)
}

/// The page envelope: finds `value`, skips everything else.
struct PageSeed<'a> {
    dec: &'a PageDecoder,
    builders: &'a mut [Builder],
    rows: &'a mut usize,
    max_rows: usize,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OData collection object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_value = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "value" && !seen_value {
                seen_value = true;
                map.next_value_seed(RowsSeed {
                    dec: self.dec,
                    builders: &mut *self.builders,
                    rows: &mut *self.rows,
                    max_rows: self.max_rows,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if seen_value { Ok(()) } else { Err(A::Error::custom("the page has no \"value\" array")) }
    }
}

/// A map key, borrowed from the page when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The `value` array.
struct RowsSeed<'a> {
    dec: &'a PageDecoder,
    builders: &'a mut [Builder],
    rows: &'a mut usize,
    max_rows: usize,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            if *self.rows < self.max_rows {
                let row = *self.rows;
                let seed = RowSeed { dec: self.dec, builders: &mut *self.builders, row };
                if seq.next_element_seed(seed)?.is_none() {
                    return Ok(());
                }
                for b in self.builders.iter_mut() {
                    if b.len() == row {
                        b.append_null();
                    }
                }
                *self.rows += 1;
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
    }
}

/// One row object.
struct RowSeed<'a> {
    dec: &'a PageDecoder,
    builders: &'a mut [Builder],
    row: usize,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.dec.slot_of(key.0.as_ref()) {
                // A repeated key keeps its first value.
                Some(i) if self.builders[i].len() == self.row => {
                    let name = self.dec.name_of(i);
                    map.next_value_seed(CellSeed { builder: &mut self.builders[i], name })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// One value, appended to its column's builder.
struct CellSeed<'a> {
    builder: &'a mut Builder,
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if let Builder::Decimal(b, scale) = self.builder {
            // Exact: parse the number's text, not an f64.
            let raw: &'de RawValue = Deserialize::deserialize(d)?;
            let text = raw.get();
            if text == "null" {
                b.append_null();
                return Ok(());
            }
            let text = text.trim_matches('"');
            return match parse_decimal(text, *scale) {
                Some(v) => {
                    b.append_value(v);
                    Ok(())
                }
                None => Err(D::Error::custom(format!("column {}: '{text}' is not a decimal number", self.name))),
            };
        }
        d.deserialize_any(self)
    }
}

impl CellSeed<'_> {
    fn bad<E: serde::de::Error>(&self, what: &dyn fmt::Display) -> E {
        E::custom(format!("column {}: unexpected value {what}", self.name))
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value for column {}", self.name)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.builder.append_null();
        Ok(())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        match self.builder {
            Builder::Boolean(b) => b.append_value(v),
            Builder::Utf8(b) => b.append_value(if v { "true" } else { "false" }),
            _ => return Err(self.bad(&v)),
        }
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        match self.builder {
            Builder::Int32(b) => match i32::try_from(v) {
                Ok(x) => b.append_value(x),
                Err(_) => return Err(self.bad(&v)),
            },
            Builder::Int64(b) => b.append_value(v),
            Builder::Float64(b) => b.append_value(v as f64),
            Builder::Utf8(b) => b.append_value(v.to_string()),
            Builder::Boolean(b) => b.append_value(v != 0),
            _ => return Err(self.bad(&v)),
        }
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(x) => self.visit_i64(x),
            Err(_) => match self.builder {
                Builder::Float64(b) => {
                    b.append_value(v as f64);
                    Ok(())
                }
                Builder::Utf8(b) => {
                    b.append_value(v.to_string());
                    Ok(())
                }
                _ => Err(self.bad(&v)),
            },
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        match self.builder {
            Builder::Float64(b) => b.append_value(v),
            Builder::Int32(b) if v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX) => {
                b.append_value(v as i32)
            }
            Builder::Int64(b) if v.fract() == 0.0 && v.abs() < 9.0e18 => b.append_value(v as i64),
            Builder::Utf8(b) => b.append_value(v.to_string()),
            _ => return Err(self.bad(&v)),
        }
        Ok(())
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<(), E> {
        self.visit_str(v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        match self.builder {
            Builder::Utf8(b) => b.append_value(v),
            Builder::Timestamp(b) => match parse_timestamp_micros(v) {
                Some(t) => b.append_value(t),
                None => return Err(self.bad(&v)),
            },
            Builder::Date32(b) => match parse_date_days(v) {
                Some(d) => b.append_value(d),
                None => return Err(self.bad(&v)),
            },
            // Numbers sent as strings (some services do).
            Builder::Int32(b) => match v.trim().parse() {
                Ok(x) => b.append_value(x),
                Err(_) => return Err(self.bad(&v)),
            },
            Builder::Int64(b) => match v.trim().parse() {
                Ok(x) => b.append_value(x),
                Err(_) => return Err(self.bad(&v)),
            },
            Builder::Float64(b) => match v.trim().parse() {
                Ok(x) => b.append_value(x),
                Err(_) => return Err(self.bad(&v)),
            },
            Builder::Boolean(b) => match v {
                "true" => b.append_value(true),
                "false" => b.append_value(false),
                _ => return Err(self.bad(&v)),
            },
            Builder::Decimal(..) => return Err(self.bad(&v)),
        }
        Ok(())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
        self.visit_str(&v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Err(A::Error::custom(format!("column {}: unexpected array", self.name)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Err(A::Error::custom(format!("column {}: unexpected object", self.name)))
    }
}
