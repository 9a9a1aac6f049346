//! Window frame exclusion (`… ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE TIES`), which
//! sqlparser does not parse: the clause is taken out of the token stream and its window
//! specification gets a marker in its PARTITION BY list instead, a name quoted with brackets
//! (a quoting the PostgreSQL dialect never produces, so no SQL text can spell the marker). The
//! binder takes the marker out again ([`exclusion_of`]).

use crate::sql::planner::plan::FrameExclusion;
use sqlparser::ast;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace, Word};

/// The quote character of the marker.
const MARKER_QUOTE: char = '[';

/// The exclusion a PARTITION BY item marks, if it is a marker.
pub fn exclusion_of(e: &ast::Expr) -> Option<FrameExclusion> {
    let ast::Expr::Identifier(id) = e else { return None };
    if id.quote_style != Some(MARKER_QUOTE) {
        return None;
    }
    Some(match id.value.as_str() {
        "exclude current row" => FrameExclusion::CurrentRow,
        "exclude group" => FrameExclusion::Group,
        "exclude ties" => FrameExclusion::Ties,
        _ => FrameExclusion::NoOthers,
    })
}

fn word(t: &TokenWithSpan) -> Option<&Word> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w),
        _ => None,
    }
}

fn is_word(t: Option<&TokenWithSpan>, value: &str) -> bool {
    t.and_then(word).is_some_and(|w| w.value.eq_ignore_ascii_case(value))
}

/// The next token at or after `i` that is not whitespace.
fn significant(tokens: &[TokenWithSpan], mut i: usize) -> usize {
    while matches!(tokens.get(i).map(|t| &t.token), Some(Token::Whitespace(_))) {
        i += 1;
    }
    i
}

/// Moves every frame exclusion of `tokens` into a marker (see the module's comment).
pub fn rewrite(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    if !tokens.iter().any(|t| word(t).is_some_and(|w| w.keyword == Keyword::EXCLUDE)) {
        return tokens;
    }
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len() + 4);
    // Open parentheses: their position in `out`, and whether they open a window
    // specification (after OVER, or after AS in a WINDOW clause).
    let mut open: Vec<(usize, bool)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let previous = out.iter().rposition(|t| !matches!(t.token, Token::Whitespace(_)));
        match &t.token {
            Token::LParen => {
                let window = previous
                    .and_then(|p| word(&out[p]))
                    .is_some_and(|w| matches!(w.keyword, Keyword::OVER | Keyword::AS));
                open.push((out.len(), window));
            }
            Token::RParen => {
                open.pop();
            }
            _ => {}
        }
        let after_bound = previous
            .and_then(|p| word(&out[p]))
            .is_some_and(|w| matches!(w.keyword, Keyword::ROW | Keyword::PRECEDING | Keyword::FOLLOWING));
        let in_window = open.last().is_some_and(|(_, window)| *window);
        if word(t).is_some_and(|w| w.keyword == Keyword::EXCLUDE) && after_bound && in_window {
            let a = significant(&tokens, i + 1);
            let (kind, end) =
                if is_word(tokens.get(a), "current") && is_word(tokens.get(significant(&tokens, a + 1)), "row") {
                    ("exclude current row", significant(&tokens, a + 1) + 1)
                } else if is_word(tokens.get(a), "group") {
                    ("exclude group", a + 1)
                } else if is_word(tokens.get(a), "ties") {
                    ("exclude ties", a + 1)
                } else if is_word(tokens.get(a), "no") && is_word(tokens.get(significant(&tokens, a + 1)), "others") {
                    ("exclude no others", significant(&tokens, a + 1) + 1)
                } else {
                    // Not an exclusion: the parser reports it.
                    out.push(t.clone());
                    i += 1;
                    continue;
                };
            let (paren, _) = *open.last().unwrap_or(&(0, false));
            insert_marker(&mut out, paren, kind, t.span);
            i = end;
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// Puts the marker first in the PARTITION BY list of the window specification opened at
/// `paren` (after its window name, if it names one), adding the list if there is none.
fn insert_marker(out: &mut Vec<TokenWithSpan>, paren: usize, kind: &str, span: sqlparser::tokenizer::Span) {
    let at = |token: Token| TokenWithSpan { token, span };
    let marker =
        at(Token::Word(Word { value: kind.into(), quote_style: Some(MARKER_QUOTE), keyword: Keyword::NoKeyword }));
    let mut i = significant(out, paren + 1);
    let keyword = out.get(i).and_then(word).map(|w| w.keyword);
    if matches!(out.get(i).map(|t| &t.token), Some(Token::Word(_)))
        && !matches!(
            keyword,
            Some(Keyword::PARTITION | Keyword::ORDER | Keyword::ROWS | Keyword::RANGE | Keyword::GROUPS)
        )
    {
        // A window name.
        i = significant(out, i + 1);
    }
    if out.get(i).and_then(word).is_some_and(|w| w.keyword == Keyword::PARTITION) {
        let by = significant(out, i + 1) + 1;
        let tokens = [at(Token::Whitespace(Whitespace::Space)), marker, at(Token::Comma)];
        out.splice(by..by, tokens);
    } else {
        let tokens = [
            at(Token::Whitespace(Whitespace::Space)),
            at(Token::make_keyword("PARTITION")),
            at(Token::Whitespace(Whitespace::Space)),
            at(Token::make_keyword("BY")),
            at(Token::Whitespace(Whitespace::Space)),
            marker,
            at(Token::Whitespace(Whitespace::Space)),
        ];
        out.splice(i..i, tokens);
    }
}
