//! A bound on the depth of the trees a token stream parses into, checked before parsing.
//!
//! sqlparser's recursion limit counts nesting (parentheses, subqueries, prefix operators), but
//! it folds a chain of binary operators (`1 + 1 + … + 1`, `a OR b OR …`) and of set operations
//! (`SELECT … UNION SELECT …`) into a left-deep tree in a loop, without recursing. Such a tree
//! can be as deep as the statement is long, and every later pass over it (binding, cloning,
//! printing, dropping) recurses once per level. So the tokens are measured first, and a
//! statement whose trees could be deeper than [`MAX_EXPRESSION_DEPTH`] fails with 54001
//! (statement_too_complex) before any tree exists, as PostgreSQL fails with 54001 past its
//! `max_stack_depth`.
//!
//! The measure is an upper bound. Within one expression (from a comma or a clause keyword to
//! the next) operators are grouped into precedence classes; a run of operators of one class
//! ends at an operator of a looser class, and the chain depth is at most the sum over the
//! classes of their longest run (`a = 1 OR a = 2 OR …` counts its ORs plus one comparison).
//! A parenthesized or bracketed part adds its own depth to the expression around it.

use crate::error::{Error, Result};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// The deepest expression or set-operation tree a statement may build.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Precedence classes of chaining operators, loosest first.
const OR: usize = 0;
const AND: usize = 1;
const NOT: usize = 2;
const COMPARISON: usize = 3;
const OTHER: usize = 4;
const CLASSES: usize = 5;

/// One level of parentheses or brackets.
#[derive(Default)]
struct Level {
    /// UNION/INTERSECT/EXCEPT at this level: they chain across the clauses of each query.
    set_operators: usize,
    /// Per class: operators in the current run, and the longest run of the current expression.
    run: [usize; CLASSES],
    longest: [usize; CLASSES],
    /// The deepest parenthesized part of the current expression.
    operand: usize,
    /// The deepest expression of this level that has ended.
    deepest_ended: usize,
}

impl Level {
    fn expression_depth(&self) -> usize {
        self.run.iter().zip(&self.longest).map(|(r, l)| r.max(l)).sum::<usize>() + self.operand
    }

    fn depth(&self) -> usize {
        self.set_operators + self.deepest_ended.max(self.expression_depth()) + 1
    }

    fn operator(&mut self, class: usize) {
        self.run[class] += 1;
        for tighter in class + 1..CLASSES {
            self.longest[tighter] = self.longest[tighter].max(self.run[tighter]);
            self.run[tighter] = 0;
        }
    }

    /// A new expression starts (after a comma or a clause keyword).
    fn end_expression(&mut self) {
        self.deepest_ended = self.deepest_ended.max(self.expression_depth());
        self.run = [0; CLASSES];
        self.longest = [0; CLASSES];
        self.operand = 0;
    }
}

/// 54001 if `tokens` could parse into a tree deeper than [`MAX_EXPRESSION_DEPTH`].
pub fn check(tokens: &[TokenWithSpan]) -> Result<()> {
    let mut levels = vec![Level::default()];
    for t in tokens {
        let top = levels.len() - 1;
        match &t.token {
            Token::LParen | Token::LBracket => levels.push(Level::default()),
            Token::RParen | Token::RBracket if top > 0 => {
                let inner = levels.pop().map(|l| l.depth()).unwrap_or_default();
                let outer = &mut levels[top - 1];
                outer.operand = outer.operand.max(inner);
            }
            Token::SemiColon if top == 0 => levels[0] = Level::default(),
            Token::Comma => levels[top].end_expression(),
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => {
                    levels[top].end_expression();
                    levels[top].set_operators += 1;
                }
                Keyword::OR => levels[top].operator(OR),
                Keyword::AND => levels[top].operator(AND),
                Keyword::NOT => levels[top].operator(NOT),
                Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::OVERLAPS => levels[top].operator(COMPARISON),
                Keyword::COLLATE | Keyword::AT | Keyword::JOIN => levels[top].operator(OTHER),
                Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::HAVING
                | Keyword::ON
                | Keyword::SET
                | Keyword::VALUES
                | Keyword::RETURNING
                | Keyword::LIMIT
                | Keyword::OFFSET
                | Keyword::BY
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE => levels[top].end_expression(),
                _ => {}
            },
            Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship => levels[top].operator(COMPARISON),
            token if is_operator(token) => levels[top].operator(OTHER),
            _ => {}
        }
        let top = levels.len() - 1;
        if levels[top].depth() > MAX_EXPRESSION_DEPTH || levels.len() > MAX_EXPRESSION_DEPTH {
            return Err(too_complex());
        }
    }
    // Unclosed parentheses are a syntax error for the parser; their depth still counts here.
    while let Some(inner) = levels.pop() {
        let depth = inner.depth();
        match levels.last_mut() {
            Some(outer) => outer.operand = outer.operand.max(depth),
            None if depth > MAX_EXPRESSION_DEPTH => return Err(too_complex()),
            None => {}
        }
    }
    Ok(())
}

fn too_complex() -> Error {
    Error::StatementTooComplex(format!(
        "statement is too complex: its expressions nest or chain more than {MAX_EXPRESSION_DEPTH} levels deep"
    ))
}

/// True for tokens that combine the expressions around them (infix, prefix and postfix
/// operators); false for names, literals and punctuation.
fn is_operator(token: &Token) -> bool {
    !matches!(
        token,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Comma
            | Token::Whitespace(_)
            | Token::LParen
            | Token::RParen
            | Token::LBracket
            | Token::RBracket
            | Token::LBrace
            | Token::RBrace
            | Token::Period
            | Token::Colon
            | Token::SemiColon
            | Token::Backslash
            | Token::CopyData { .. }
            | Token::Placeholder(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::Tokenizer;

    fn depth_ok(sql: &str) -> bool {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().unwrap();
        check(&tokens).is_ok()
    }

    fn chain(op: &str, n: usize) -> String {
        vec!["1"; n].join(op)
    }

    #[test]
    fn long_chains_are_refused_and_short_ones_pass() {
        let limit = MAX_EXPRESSION_DEPTH;
        assert!(depth_ok(&format!("SELECT {}", chain("+", limit - 2))));
        assert!(!depth_ok(&format!("SELECT {}", chain("+", limit + 1))));
        assert!(!depth_ok(&format!("SELECT {}", chain("+", 200_000))));
        assert!(!depth_ok(&format!("SELECT 1 WHERE {}", chain(" = 1 OR 1", limit + 1))));
        assert!(!depth_ok(&vec!["SELECT 1"; limit + 1].join(" UNION ALL ")));
    }

    #[test]
    fn separate_expressions_do_not_add_up() {
        let n = MAX_EXPRESSION_DEPTH - 10;
        // Each list element is its own expression.
        assert!(depth_ok(&format!("SELECT {}", vec!["-1"; 5 * n].join(", "))));
        assert!(depth_ok(&format!("VALUES {}", vec!["(-1, 'a' || 'b')"; 5 * n].join(", "))));
        // Comparisons inside an OR chain are one level each, not a run.
        assert!(depth_ok(&format!("SELECT 1 WHERE x = 1{}", " OR x = 1".repeat(n - 5))));
        // Operators inside string literals, identifiers and comments are not operators.
        let literal = format!("'{}'", "+".repeat(50_000));
        assert!(depth_ok(&format!("SELECT {literal}, \"{}\" -- {}", "+".repeat(5000), "+".repeat(5000))));
    }

    #[test]
    fn parentheses_add_their_depth_to_the_expression_around_them() {
        let half = MAX_EXPRESSION_DEPTH / 2 + 10;
        let inner = format!("({})", chain("+", half));
        assert!(!depth_ok(&format!("SELECT {inner}{}", " + 1".repeat(half))));
        assert!(!depth_ok(&format!("SELECT {}{inner}", "1 + ".repeat(half))));
        assert!(depth_ok(&format!("SELECT {inner}, {inner}")));
    }
}
