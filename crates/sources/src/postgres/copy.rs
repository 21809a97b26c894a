//! PostgreSQL's binary COPY format (`COPY (…) TO STDOUT (FORMAT binary)`), parsed as its bytes
//! arrive. Each field is the same binary value encoding a binary query result carries, so
//! [`super::decode::append`] decodes both.

/// `PGCOPY\n\377\r\n\0`, then 32-bit flags and the header extension's length.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

#[derive(Default)]
pub struct CopyParser {
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    ended: bool,
    /// Where each field of the current row lies in `buf`; `None` is SQL NULL. Kept from row
    /// to row so a row costs no allocation.
    fields: Vec<Option<(usize, usize)>>,
}

impl CopyParser {
    /// Adds bytes; rows already returned are forgotten first.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(chunk);
    }

    /// Field `i` of the row [`CopyParser::next_row`] last returned; `None` is SQL NULL.
    pub fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields[i].map(|(at, len)| &self.buf[at..at + len])
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }

    /// Moves to the next complete row (read it with [`CopyParser::field`]); `Ok(false)` when
    /// more bytes are needed or the trailer was read. An incomplete header or row consumes
    /// nothing.
    pub fn next_row(&mut self, columns: usize) -> Result<bool, String> {
        if self.ended {
            return Ok(false);
        }
        if !self.header_done {
            let start = self.pos;
            if !self.header()? {
                self.pos = start;
                return Ok(false);
            }
            self.header_done = true;
        }
        let start = self.pos;
        let complete = self.row(columns)?;
        if !complete && !self.ended {
            self.pos = start;
        }
        Ok(complete)
    }

    fn header(&mut self) -> Result<bool, String> {
        let Some(head) = self.take(19) else {
            return Ok(false);
        };
        if &head[..11] != SIGNATURE {
            return Err("not a binary COPY stream".into());
        }
        let extension = u32::from_be_bytes([head[15], head[16], head[17], head[18]]) as usize;
        Ok(self.take(extension).is_some())
    }

    fn row(&mut self, columns: usize) -> Result<bool, String> {
        let Some(count) = self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
            return Ok(false);
        };
        if count == -1 {
            self.ended = true;
            return Ok(false);
        }
        if count as usize != columns {
            return Err(format!("a COPY row has {count} fields, not {columns}"));
        }
        self.fields.clear();
        for _ in 0..columns {
            let Some(len) = self
                .take(4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            else {
                return Ok(false);
            };
            if len == -1 {
                self.fields.push(None);
                continue;
            }
            if len < 0 {
                return Err(format!("a COPY field has length {len}"));
            }
            let at = self.pos;
            if self.take(len as usize).is_none() {
                return Ok(false);
            }
            self.fields.push(Some((at, len as usize)));
        }
        Ok(true)
    }

    /// Whether the trailer has been read: anything short of it is a cut-off stream.
    pub fn finished(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `COPY (SELECT 1::int4, NULL::text, 'héllo'::text UNION ALL SELECT -2, 'x', '')
    /// TO STDOUT (FORMAT binary)`, as PostgreSQL 15 wrote it.
    const FROM_SERVER: &[u8] = include_bytes!("testdata/copy_rows.bin");

    fn rows(pieces: usize) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut parser = CopyParser::default();
        let mut out = Vec::new();
        for piece in FROM_SERVER.chunks(pieces) {
            parser.push(piece);
            while parser.next_row(3).unwrap() {
                out.push(
                    (0..3)
                        .map(|i| parser.field(i).map(<[u8]>::to_vec))
                        .collect(),
                );
            }
        }
        assert!(parser.finished(), "the trailer was read");
        out
    }

    #[test]
    fn parses_a_server_copy_stream_however_it_is_cut() {
        let expected = vec![
            vec![
                Some(1i32.to_be_bytes().to_vec()),
                None,
                Some("héllo".as_bytes().to_vec()),
            ],
            vec![
                Some((-2i32).to_be_bytes().to_vec()),
                Some(b"x".to_vec()),
                Some(vec![]),
            ],
        ];
        assert_eq!(rows(FROM_SERVER.len()), expected);
        for piece in [1, 3, 7, 20] {
            assert_eq!(rows(piece), expected, "in pieces of {piece} bytes");
        }
    }

    #[test]
    fn rejects_what_is_not_binary_copy() {
        let mut parser = CopyParser::default();
        parser.push(b"1\t\\N\thello\n and more text than a header");
        assert!(parser.next_row(3).is_err());
    }
}
