//! CLIP's BPE tokenizer: the real `tokenizer.json` (built from OpenAI's vocab, shipped inside
//! the crate) run by HF `tokenizers`, preceded by the text cleaning CLIP applies and
//! tokenizer.json cannot express (ftfy-style fixes, HTML unescaping, Python's lower-casing).

use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use unicode_normalization::UnicodeNormalization;

/// CLIP's tokenizer definition (MIT, OpenAI CLIP's vocabulary and merges).
pub const TOKENIZER_JSON: &[u8] = include_bytes!("../assets/tokenizer.json");
pub const START_OF_TEXT: u32 = 49406;
pub const END_OF_TEXT: u32 = 49407;
pub const CONTEXT_LENGTH: usize = 77;

#[derive(Debug, thiserror::Error)]
#[error("The tokenizer failed: {0}")]
pub struct TokenizerError(String);

/// Token ids of one text, padded with 0 to the context length, end-of-text kept last when cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Position of the first end-of-text token: where the text tower pools.
    pub eot_index: usize,
}

pub struct ClipTokenizer {
    inner: Tokenizer,
}

impl ClipTokenizer {
    pub fn new() -> Result<Self, TokenizerError> {
        Self::with_context_length(CONTEXT_LENGTH)
    }

    pub fn with_context_length(context_length: usize) -> Result<Self, TokenizerError> {
        let mut inner = Tokenizer::from_bytes(TOKENIZER_JSON).map_err(|e| TokenizerError(e.to_string()))?;
        // Truncation leaves room for the post-processor's SOT/EOT, so EOT stays last, as in
        // `clip.tokenize` (`tokens[:77]; tokens[-1] = EOT`).
        inner
            .with_truncation(Some(TruncationParams { max_length: context_length, ..Default::default() }))
            .map_err(|e| TokenizerError(e.to_string()))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(context_length),
            pad_id: 0,
            pad_token: "!".into(),
            ..Default::default()
        }));
        Ok(Self { inner })
    }

    pub fn encode(&self, text: &str) -> Result<Tokens, TokenizerError> {
        let cleaned = clean_text(text);
        let encoding = self.inner.encode(cleaned.as_str(), true).map_err(|e| TokenizerError(e.to_string()))?;
        let ids = encoding.get_ids().to_vec();
        let eot_index = ids.iter().position(|&t| t == END_OF_TEXT).unwrap_or(ids.len() - 1);
        Ok(Tokens { ids, eot_index })
    }

    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Tokens>, TokenizerError> {
        texts.iter().map(|t| self.encode(t)).collect()
    }
}

/// What open_clip's tokenizer does before BPE: `ftfy.fix_text`, `html.unescape` twice,
/// whitespace collapsed and stripped, Python `str.lower()`.
pub fn clean_text(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_escape::decode_html_entities(&html_escape::decode_html_entities(&fixed).into_owned()).into_owned();
    let collapsed = unescaped.split_whitespace().collect::<Vec<_>>().join(" ");
    // Rust's `to_lowercase` applies the Greek final-sigma rule like Python's `str.lower()`;
    // the tokenizer's own Lowercase maps char by char (ΟΔΟΣ → οδοσ instead of οδος).
    let lowered = collapsed.to_lowercase();
    // open_clip renamed its special tokens, so a literal `<|endoftext|>` typed by the user is
    // plain text there, while tokenizer.json would match it as the special token. Added tokens
    // are matched case-sensitively before normalisation, so one upper-case letter defuses the
    // match and the tokenizer's Lowercase turns it back into the same text.
    lowered.replace("<|endoftext|>", "<|endoftexT|>").replace("<|startoftext|>", "<|startoftexT|>")
}

/// The parts of ftfy's `fix_text` (default settings) that change real-world label text.
fn fix_text(text: &str) -> String {
    let text: String = text.split(' ').map(fix_mojibake).collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // fix_c1_controls: C1 control characters are Windows-1252 bytes decoded as Latin-1.
            '\u{80}'..='\u{9f}' => out.push(cp1252_char(c as u8)),
            // fix_latin_ligatures
            'ﬀ' => out.push_str("ff"),
            'ﬁ' => out.push_str("fi"),
            'ﬂ' => out.push_str("fl"),
            'ﬃ' => out.push_str("ffi"),
            'ﬄ' => out.push_str("ffl"),
            'ﬅ' => out.push_str("ſt"),
            'ﬆ' => out.push_str("st"),
            'Ĳ' => out.push_str("IJ"),
            'ĳ' => out.push_str("ij"),
            // fix_character_width: full-width forms and the ideographic space.
            '\u{3000}' => out.push(' '),
            '\u{ff01}'..='\u{ffef}' => out.extend(c.nfkc()),
            // uncurl_quotes
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => out.push('\''),
            '\u{201c}'..='\u{201f}' => out.push('"'),
            // fix_line_breaks
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            // remove_control_chars
            '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}' => {}
            c => out.push(c),
        }
    }
    out.nfc().collect()
}

/// Windows-1252's 0x80–0x9F row; ftfy's "sloppy" codec keeps the five undefined bytes as Latin-1.
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
    '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

fn cp1252_char(byte: u8) -> char {
    match byte {
        0x80..=0x9f => CP1252_HIGH[(byte - 0x80) as usize],
        b => b as char,
    }
}

fn cp1252_byte(c: char) -> Option<u8> {
    match c as u32 {
        0..=0x7f | 0xa0..=0xff => Some(c as u8),
        _ => CP1252_HIGH.iter().position(|&h| h == c).map(|i| 0x80 + i as u8),
    }
}

/// UTF-8 text that was decoded as Windows-1252 (`cafÃ©`, `itâ€™s`): re-encode and decode again
/// when that gives valid UTF-8 with fewer characters, ftfy's `fix_encoding` on one word.
fn fix_mojibake(word: &str) -> String {
    if word.is_ascii() {
        return word.to_string();
    }
    let bytes: Option<Vec<u8>> = word.chars().map(cp1252_byte).collect();
    match bytes.and_then(|b| String::from_utf8(b).ok()) {
        Some(fixed) if fixed.chars().count() < word.chars().count() => fixed,
        _ => word.to_string(),
    }
}
