//! A builder for one Utf8 column of a decoded page, for [`crate::arrow_decode`].
//!
//! Arrow's `StringBuilder` copies each value with a call to `memcpy`, which on the short
//! strings of a Web API page (GUIDs, names, labels: 5-40 bytes) costs more than the copy. A
//! value that sits inside the page is copied here as a fixed 32-byte window of the page (which
//! the compiler turns into a few vector moves) and the excess cut off again; longer values are
//! copied as usual. The array is checked once when it is built (valid UTF-8, offsets on
//! character boundaries), so nothing here needs `unsafe`.

use std::sync::Arc;

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::error::ArrowError;

/// How many bytes a short value is copied with.
const WINDOW: usize = 32;

/// Values, offsets and validity of one text column.
#[derive(Debug)]
pub(crate) struct TextBuilder {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl TextBuilder {
    /// Room for `rows` values of `bytes` bytes in all.
    pub(crate) fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self { values: Vec::with_capacity(bytes + WINDOW), offsets, nulls: NullBufferBuilder::new(rows) }
    }

    /// The number of values so far.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The bytes of all values so far.
    pub(crate) fn value_bytes(&self) -> usize {
        self.values.len()
    }

    /// Appends a value.
    #[inline]
    pub(crate) fn append_value(&mut self, value: impl AsRef<str>) {
        self.values.extend_from_slice(value.as_ref().as_bytes());
        self.end_value();
    }

    /// Appends the value `text[start..end]`. It is checked to be UTF-8 (and to start and end
    /// on character boundaries) by [`TextBuilder::finish`].
    #[inline(always)]
    pub(crate) fn append_slice_of(&mut self, text: &[u8], start: usize, end: usize) {
        let len = end.saturating_sub(start);
        match text.get(start..).and_then(<[u8]>::first_chunk::<WINDOW>) {
            Some(window) if len <= WINDOW => {
                let keep = self.values.len() + len;
                self.values.extend_from_slice(window);
                self.values.truncate(keep);
            }
            _ => self.values.extend_from_slice(text.get(start..end).unwrap_or_default()),
        }
        self.end_value();
    }

    /// Appends a null.
    #[inline]
    pub(crate) fn append_null(&mut self) {
        self.offsets.push(self.offsets.last().copied().unwrap_or(0));
        self.nulls.append_null();
    }

    #[inline(always)]
    fn end_value(&mut self) {
        // Past i32::MAX the offset saturates; `finish` refuses such a column.
        self.offsets.push(i32::try_from(self.values.len()).unwrap_or(i32::MAX));
        self.nulls.append_non_null();
    }

    /// The column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, ArrowError> {
        if i32::try_from(self.values.len()).is_err() {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a text column of one page holds {} bytes, over the 2 GiB an Arrow Utf8 array can hold; \
                 ask for smaller pages",
                self.values.len()
            )));
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        let array = StringArray::try_new(offsets, Buffer::from_vec(self.values), self.nulls.finish())?;
        Ok(Arc::new(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};

    #[test]
    fn values_windows_and_nulls() {
        let page = r#"{"a":"short","b":"é and a value longer than thirty-two bytes","c":"end"}"#;
        let mut b = TextBuilder::with_capacity(2, 4);
        let span = |v: &str| {
            let start = page.find(v).unwrap();
            (start, start + v.len())
        };
        let (s, e) = span("short");
        b.append_slice_of(page.as_bytes(), s, e);
        b.append_null();
        let (s, e) = span("é and a value longer than thirty-two bytes");
        b.append_slice_of(page.as_bytes(), s, e);
        // The last value lies within 32 bytes of the page's end: copied without the window.
        let (s, e) = span("end");
        b.append_slice_of(page.as_bytes(), s, e);
        b.append_value(String::from("owned"));
        assert_eq!(b.len(), 5);
        let array = b.finish().unwrap();
        let strings = array.as_string::<i32>();
        assert_eq!(strings.value(0), "short");
        assert!(strings.is_null(1));
        assert_eq!(strings.value(2), "é and a value longer than thirty-two bytes");
        assert_eq!(strings.value(3), "end");
        assert_eq!(strings.value(4), "owned");
        assert_eq!(strings.null_count(), 1);
    }

    #[test]
    fn a_slice_off_character_boundaries_is_refused_when_built() {
        let mut b = TextBuilder::with_capacity(1, 4);
        b.append_slice_of("é".as_bytes(), 0, 1);
        assert!(b.finish().is_err());
    }
}
