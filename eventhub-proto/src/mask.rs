//! Client-to-server masking (RFC 6455 section 5.3).
//!
//! Every byte of a client frame's payload is XOR-ed with one byte of a 4-byte
//! key, cycling. Unmasking sits on the read path of every byte a client
//! sends, so it works a machine word at a time: the key is widened to a
//! `u64` (rotated to the payload's starting offset) and applied to aligned
//! words, with a byte loop only for the unaligned head and tail.
//!
//! `offset` lets a payload be unmasked in pieces as it arrives (the reader
//! does this to reject invalid UTF-8 before a frame is complete).
//!
//! Protocol crate, a leaf.

/// XORs `buf` with `key`, as if `buf` started at byte `offset` of the payload.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = rotate(key, offset);
    // SAFETY: u64 has no invalid bit patterns, so viewing aligned bytes as
    // u64 words is sound; align_to_mut splits off any unaligned head/tail.
    let (head, words, tail) = unsafe { buf.align_to_mut::<u64>() };
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    key = rotate(key, head.len());
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    for w in words.iter_mut() {
        *w ^= wide;
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The key as seen from byte `offset` of the payload.
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset & 3;
    [key[s], key[(s + 1) & 3], key[(s + 2) & 3], key[(s + 3) & 3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn word_mask_matches_byte_mask_at_every_offset_and_alignment() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..9 {
            for offset in 0..4 {
                for len in [0, 1, 3, 7, 8, 9, 31, 64, 200] {
                    let mut a = data[start..start + len].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, offset);
                    naive(&mut b, key, offset);
                    assert_eq!(a, b, "start {start} offset {offset} len {len}");
                }
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..100u8).collect();
        let mut pieces = whole.clone();
        apply_mask(&mut whole, key, 0);
        let (a, b) = pieces.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn rfc_example_hello_unmasks() {
        // RFC 6455 section 5.7: a masked "Hello".
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }
}
