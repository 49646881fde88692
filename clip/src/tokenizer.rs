//! CLIP's byte-level BPE tokenizer: a prompt → `input_ids` [77] as OpenAI's `clip.tokenize`.
//!
//! The BPE itself is `instant-clip-tokenizer` (vocabulary embedded, ids checked against the
//! reference tokenizer in the tests). Around it we do what `clip.tokenize` does and the crate
//! leaves to the caller: the text clean-up (HTML entities, whitespace), start/end-of-text
//! markers, zero padding, and the 77-token limit.

use instant_clip_tokenizer::{Token, Tokenizer};

use stylize_engines::error::{Error, Result};

/// Context length of every OpenAI CLIP text encoder.
pub const CONTEXT: usize = 77;

/// The crate builds its merge table on construction (~50k rules): share one.
fn shared() -> &'static Tokenizer {
    static TOKENIZER: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
    TOKENIZER.get_or_init(Tokenizer::new)
}

/// What to do with a prompt longer than the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// A clear error naming the token count (the CLI default: a silently cut prompt would be
    /// tuned for words the user never sees used).
    Error,
    /// `clip.tokenize(..., truncate=True)`: keep the first 76 tokens, end with end-of-text.
    Truncate,
}

/// `clip`'s `basic_clean` + `whitespace_clean`, minus ftfy's mojibake repair: unescape the
/// common HTML entities (twice, as the reference does), collapse whitespace, trim.
fn clean(text: &str) -> String {
    let mut s = text.to_string();
    for _ in 0..2 {
        s = s
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&apos;", "'")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&");
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Token ids of a prompt, without start/end markers.
pub fn encode(prompt: &str) -> Vec<u16> {
    let mut tokens = Vec::new();
    shared().encode(&clean(prompt), &mut tokens);
    tokens.into_iter().map(Token::to_u16).collect()
}

/// `input_ids` for one prompt: start-of-text, BPE ids, end-of-text, zero padding to 77.
pub fn tokenize(prompt: &str, overflow: Overflow) -> Result<Vec<i64>> {
    let tok = shared();
    let body = encode(prompt);
    if body.is_empty() {
        return Err(Error::Clip(
            "the prompt is empty: give some words to tune the style toward".into(),
        ));
    }
    let mut ids = Vec::with_capacity(CONTEXT);
    ids.push(i64::from(tok.start_of_text().to_u16()));
    let room = CONTEXT - 2;
    if body.len() > room && overflow == Overflow::Error {
        return Err(Error::Clip(format!(
            "the prompt is {} tokens long; CLIP reads at most {room} (77 with start and end \
             markers): shorten it",
            body.len()
        )));
    }
    ids.extend(body.iter().take(room).map(|&t| i64::from(t)));
    ids.push(i64::from(tok.end_of_text().to_u16()));
    ids.resize(CONTEXT, 0);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ids_for_a_photo_of_a_cat() {
        let ids = tokenize("a photo of a cat", Overflow::Error).unwrap();
        assert_eq!(&ids[..8], &[49406, 320, 1125, 539, 320, 2368, 49407, 0]);
        assert_eq!(ids.len(), CONTEXT);
        assert!(ids[7..].iter().all(|&i| i == 0));
    }

    #[test]
    fn cleaning_matches_basic_and_whitespace_clean() {
        assert_eq!(clean("  a\t&amp;amp;  b\n"), "a & b");
        assert_eq!(
            tokenize("A   Photo of a CAT ", Overflow::Error).unwrap(),
            tokenize("a photo of a cat", Overflow::Error).unwrap()
        );
    }

    #[test]
    fn empty_and_overlong_prompts_are_errors() {
        for empty in ["", "   ", "\n\t"] {
            let err = tokenize(empty, Overflow::Error).unwrap_err().to_string();
            assert!(err.contains("empty"), "{err}");
        }
        let long = "cat ".repeat(80);
        let err = tokenize(&long, Overflow::Error).unwrap_err().to_string();
        assert!(err.contains("80 tokens") && err.contains("75"), "{err}");
        let cut = tokenize(&long, Overflow::Truncate).unwrap();
        assert_eq!(cut.len(), CONTEXT);
        assert_eq!(cut[76], 49407);
        assert!(cut[1..76].iter().all(|&t| t == cut[1]));
        // Exactly 75 body tokens fit without truncation.
        assert!(tokenize(&"cat ".repeat(75), Overflow::Error).is_ok());
    }
}
