//! Counting the messages of a gRPC body from its length-prefixed framing.
//!
//! Each gRPC message is a 5-byte header (a compression flag and a big-endian `u32`
//! length) followed by that many bytes. The decoder reads only the headers and skips
//! the message bytes by arithmetic, so it copies nothing, and it keeps its place
//! across chunks however the body is split.

use std::io::IoSlice;

use bytes::Buf;

/// Bytes of a message header: one flag byte and a 4-byte length.
const HEADER_LEN: usize = 5;

/// Chunks of one data frame the decoder looks at; bodies from hyper and tonic hand
/// over one chunk per frame, so this only matters for exotic `Buf` types.
const MAX_CHUNKS: usize = 16;

/// A state machine over the bytes of one direction of a gRPC call.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    state: State,
}

/// Eight bytes: every call's guard carries one.
#[derive(Debug)]
enum State {
    /// Reading a header: `read` of its 5 bytes seen; the length bytes so far.
    Header { read: u8, length: u32 },
    /// Skipping the rest of a message, whose length (a `u32`) bounds it.
    Message { remaining: u32 },
    /// A data frame had more chunks than the decoder looks at; counting stopped
    /// rather than guessing.
    Lost,
}

impl Default for State {
    fn default() -> Self {
        State::Header { read: 0, length: 0 }
    }
}

impl FrameDecoder {
    /// Feeds the bytes of one data frame, without consuming them; returns the number
    /// of messages that ended in them.
    pub(crate) fn feed_buf(&mut self, data: &impl Buf) -> u64 {
        let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
        let filled = data.chunks_vectored(&mut slices);
        let slices = &slices[..filled];
        let seen: usize = slices.iter().map(|slice| slice.len()).sum();
        let messages = slices.iter().map(|slice| self.feed(slice)).sum();
        if seen < data.remaining() {
            self.state = State::Lost;
        }
        messages
    }

    /// Whether the bytes so far end where a message ends (or counting stopped, which
    /// says nothing either way).
    pub(crate) fn at_message_boundary(&self) -> bool {
        matches!(self.state, State::Header { read: 0, .. } | State::Lost)
    }

    /// Feeds the next bytes; returns the number of messages that ended in them.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut messages = 0;
        while !bytes.is_empty() {
            match &mut self.state {
                State::Header { read, length } => {
                    // Byte 0 is the compression flag; bytes 1..5 the length.
                    if *read > 0 {
                        *length = (*length << 8) | u32::from(bytes[0]);
                    }
                    *read += 1;
                    bytes = &bytes[1..];
                    if usize::from(*read) == HEADER_LEN {
                        let remaining = *length;
                        if remaining == 0 {
                            messages += 1;
                            self.state = State::default();
                        } else {
                            self.state = State::Message { remaining };
                        }
                    }
                }
                State::Message { remaining } => {
                    let skipped = (*remaining).min(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                    *remaining -= skipped;
                    // `skipped` is at most `bytes.len()`, so it fits in a usize.
                    bytes = &bytes[skipped as usize..];
                    if *remaining == 0 {
                        messages += 1;
                        self.state = State::default();
                    }
                }
                State::Lost => return messages,
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One framed message with `len` payload bytes.
    fn message(len: u32) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend(std::iter::repeat_n(0xab, len as usize));
        framed
    }

    fn stream(lens: &[u32]) -> Vec<u8> {
        lens.iter().flat_map(|len| message(*len)).collect()
    }

    #[test]
    fn one_byte_chunks_count_one_message() {
        let bytes = message(300);
        let mut decoder = FrameDecoder::default();
        let counts: Vec<u64> = bytes.iter().map(|b| decoder.feed(&[*b])).collect();
        assert_eq!(counts.iter().sum::<u64>(), 1);
        // The message ends with its last byte, not before.
        assert_eq!(counts.last(), Some(&1));
    }

    #[test]
    fn a_header_split_anywhere_is_reassembled() {
        let bytes = stream(&[70_000, 3]);
        for split in 1..HEADER_LEN {
            let mut decoder = FrameDecoder::default();
            let counted = decoder.feed(&bytes[..split]) + decoder.feed(&bytes[split..]);
            assert_eq!(counted, 2, "header split after byte {split}");
        }
    }

    #[test]
    fn several_messages_in_one_chunk() {
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.feed(&stream(&[1, 2, 3, 4])), 4);
    }

    #[test]
    fn zero_length_messages_count() {
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.feed(&stream(&[0, 0, 5, 0])), 4);
    }

    #[test]
    fn every_split_of_a_stream_counts_the_same() {
        let bytes = stream(&[0, 7, 256, 0, 1]);
        for size in 1..bytes.len() {
            let mut decoder = FrameDecoder::default();
            let counted: u64 = bytes.chunks(size).map(|chunk| decoder.feed(chunk)).sum();
            assert_eq!(counted, 5, "chunks of {size} bytes");
        }
    }

    #[test]
    fn an_unfinished_message_is_not_counted() {
        let bytes = message(10);
        let mut decoder = FrameDecoder::default();
        assert!(decoder.at_message_boundary());
        assert_eq!(decoder.feed(&bytes[..bytes.len() - 1]), 0);
        assert!(!decoder.at_message_boundary());
        assert_eq!(decoder.feed(&bytes[bytes.len() - 1..]), 1);
        assert!(decoder.at_message_boundary());
        decoder.feed(&bytes[..2]);
        assert!(!decoder.at_message_boundary(), "inside a header");
    }

    #[test]
    fn a_buf_of_several_chunks_is_read_without_consuming_it() {
        let bytes = stream(&[2, 3]);
        let (first, second) = bytes.split_at(4);
        let data =
            bytes::Bytes::copy_from_slice(first).chain(bytes::Bytes::copy_from_slice(second));
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.feed_buf(&data), 2);
        assert_eq!(data.remaining(), bytes.len());
    }
}
