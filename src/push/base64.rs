//! Base64 (RFC 4648): the standard alphabet with padding for `Authorization: Basic`, the
//! URL-safe one without padding for the Pushgateway's `@base64` path segments.
//!
//! Two encodings of a few short strings per pusher do not justify a dependency.

/// RFC 4648 section 4, padded: what basic authentication (RFC 7617) uses.
pub(crate) fn standard(input: &[u8]) -> String {
    encode(
        input,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        true,
    )
}

/// RFC 4648 section 5, the URL- and filename-safe alphabet, unpadded (the Pushgateway
/// takes padding as optional).
pub(crate) fn url_safe(input: &[u8]) -> String {
    encode(
        input,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        false,
    )
}

fn encode(input: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let triple = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        // A chunk of n bytes carries n + 1 sextets.
        for sextet in 0..=chunk.len() {
            let index = (triple >> (18 - 6 * sextet)) & 0x3f;
            out.push(char::from(alphabet[index as usize]));
        }
        if pad {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, encoded) in vectors {
            assert_eq!(standard(input.as_bytes()), encoded, "{input:?}");
            assert_eq!(
                url_safe(input.as_bytes()),
                encoded.trim_end_matches('='),
                "{input:?}"
            );
        }
    }

    #[test]
    fn the_alphabets_differ_in_their_last_two_characters() {
        assert_eq!(standard(&[0xfb, 0xff]), "+/8=");
        assert_eq!(url_safe(&[0xfb, 0xff]), "-_8");
    }
}
