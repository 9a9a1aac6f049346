//! SQL parsing: sqlparser's PostgreSQL dialect plus ChronosDB's extensions.
//!
//! Text is tokenized once; everything after that works on tokens and trees, never on the text,
//! so nothing inside a string literal, a quoted identifier or a comment can change what a
//! statement means. Before parsing, the token stream is
//! - bounded: operator chains that would fold into expression trees deeper than
//!   [`MAX_EXPRESSION_DEPTH`] fail with 54001 (statement_too_complex), as do nestings past the
//!   parser's recursion limit, so no later pass (binding, evaluation, printing, dropping the
//!   tree) can run out of stack;
//! - extended: `CREATE TABLE … WITH TTL=7d` (no parentheses) becomes the standard
//!   `WITH (ttl = '7d')`, and COPY's `FREEZE ON`/`HEADER OFF` become `true`/`false`;
//! - completed: a window frame's `EXCLUDE …`, which sqlparser does not parse, becomes a marker
//!   the binder reads ([`frame_exclusion`]).
//!
//! After parsing, relation names are checked: `db.schema.table` must name this database, and a
//! schema must exist ([`relations`]).

mod depth;
pub mod frame_exclusion;
mod relations;
mod vacuum;

pub use depth::MAX_EXPRESSION_DEPTH;

use crate::error::{Error, Result};
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// Statements nested deeper than this are rejected instead of exhausting the stack.
const RECURSION_LIMIT: usize = 200;

/// The database every session is connected to; `chronos.public.t` names table `t`.
pub const DATABASE: &str = "chronos";

/// Parses a string of zero or more `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<ast::Statement>> {
    let dialect = PostgreSqlDialect {};
    let mut parser = parser_over(&dialect, sql)?;
    let mut statements = parse_statements(&mut parser).map_err(|e| syntax_error(sql, e))?;
    for statement in &mut statements {
        relations::resolve(statement)?;
    }
    Ok(statements)
}

/// Parses one expression (column defaults).
pub fn parse_expr(sql: &str) -> Result<ast::Expr> {
    let dialect = PostgreSqlDialect {};
    parser_over(&dialect, sql)?.parse_expr().map_err(|e| syntax_error(sql, e))
}

/// A parser over the bounded, rewritten tokens of `sql`.
fn parser_over<'a>(dialect: &'a PostgreSqlDialect, sql: &str) -> Result<Parser<'a>> {
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| syntax_error(sql, ParserError::TokenizerError(e.to_string())))?;
    depth::check(&tokens)?;
    Ok(Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(rewrite_extensions(frame_exclusion::rewrite(tokens))))
}

/// ChronosDB's spellings, rewritten token by token into the standard ones. Statements are
/// told apart by `;` outside parentheses; each rewrite applies only in its statement kind.
fn rewrite_extensions(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut first_keyword: Option<Keyword> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon if depth == 0 => first_keyword = None,
            Token::Word(w) if first_keyword.is_none() => first_keyword = Some(w.keyword),
            _ => {}
        }
        if first_keyword == Some(Keyword::CREATE) && keyword_at(&tokens, i) == Some(Keyword::WITH) {
            if let Some((value, end)) = ttl_shorthand(&tokens, i) {
                let span = t.span;
                let at = |token: Token| TokenWithSpan { token, span };
                out.push(t.clone());
                out.push(at(Token::Whitespace(Whitespace::Space)));
                out.push(at(Token::LParen));
                out.push(at(Token::make_word("ttl", None)));
                out.push(at(Token::Eq));
                out.push(at(Token::SingleQuotedString(value)));
                out.push(at(Token::RParen));
                i = end;
                continue;
            }
        }
        if first_keyword == Some(Keyword::COPY) && matches!(keyword_at(&tokens, i), Some(Keyword::ON | Keyword::OFF)) {
            let previous = out.iter().rev().find(|t| !matches!(t.token, Token::Whitespace(_)));
            if matches!(previous.and_then(|p| keyword_of(&p.token)), Some(Keyword::FREEZE | Keyword::HEADER)) {
                let value = if keyword_at(&tokens, i) == Some(Keyword::ON) { "true" } else { "false" };
                out.push(TokenWithSpan { token: Token::make_keyword(value), span: t.span });
                i += 1;
                continue;
            }
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

fn keyword_of(token: &Token) -> Option<Keyword> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

fn keyword_at(tokens: &[TokenWithSpan], i: usize) -> Option<Keyword> {
    tokens.get(i).and_then(|t| keyword_of(&t.token))
}

/// At a `WITH` token: `WITH TTL = <value>` where the value is the tokens up to the next
/// whitespace or `;` (`7d`, `'7 days'`, `30m`). Returns the value's text (a quoted string's
/// contents) and the index after it.
fn ttl_shorthand(tokens: &[TokenWithSpan], with: usize) -> Option<(String, usize)> {
    let mut i = with + 1;
    let skip_space = |mut i: usize| {
        while matches!(tokens.get(i).map(|t| &t.token), Some(Token::Whitespace(_))) {
            i += 1;
        }
        i
    };
    i = skip_space(i);
    match tokens.get(i).map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("ttl") => i += 1,
        _ => return None,
    }
    i = skip_space(i);
    if !matches!(tokens.get(i).map(|t| &t.token), Some(Token::Eq)) {
        return None;
    }
    i = skip_space(i + 1);
    let start = i;
    let mut value = String::new();
    while let Some(t) = tokens.get(i) {
        match &t.token {
            Token::Whitespace(_) | Token::SemiColon | Token::EOF => break,
            Token::SingleQuotedString(s) => value.push_str(s),
            other => value.push_str(&other.to_string()),
        }
        i += 1;
    }
    (i > start).then_some((value, i))
}

/// sqlparser's statement loop, plus PostgreSQL's `CREATE USER` (a `CREATE ROLE` that defaults
/// to LOGIN), which the PostgreSQL dialect parses as another product's statement.
fn parse_statements(parser: &mut Parser) -> std::result::Result<Vec<ast::Statement>, ParserError> {
    use sqlparser::tokenizer::Word;
    let mut statements = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        if parser.peek_token().token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return parser.expected("end of statement", parser.peek_token());
        }
        let keyword = |t: &Token| match t {
            Token::Word(Word { keyword, .. }) => Some(*keyword),
            _ => None,
        };
        let [first, second, third] = parser.peek_tokens::<3>();
        let create_user = keyword(&first) == Some(Keyword::CREATE)
            && keyword(&second) == Some(Keyword::USER)
            && keyword(&third) != Some(Keyword::MAPPING);
        let statement = if keyword(&first) == Some(Keyword::VACUUM) {
            vacuum::parse(parser)?
        } else if create_user {
            let _ = parser.parse_keywords(&[Keyword::CREATE, Keyword::USER]);
            let mut role = parser.parse_create_role(ast::RoleKeyword::Role)?;
            role.login.get_or_insert(true);
            ast::Statement::CreateRole(role)
        } else {
            parser.parse_statement()?
        };
        statements.push(statement);
        expecting_delimiter = true;
    }
    Ok(statements)
}

/// Converts a parser error into PostgreSQL's `syntax error at or near "…"` with a position.
fn syntax_error(sql: &str, err: ParserError) -> Error {
    let text = match &err {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return Error::StatementTooComplex("statement is too complex: it nests too deeply".into())
        }
    };
    // Messages end with "at Line: L, Column: C".
    let position = text.rfind("Line: ").and_then(|i| {
        let rest = &text[i + 6..];
        let (line, col) = rest.split_once(", Column: ")?;
        let line: usize = line.trim().parse().ok()?;
        let col: usize = col.trim().trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
        let offset: usize = sql.split('\n').take(line.saturating_sub(1)).map(|l| l.chars().count() + 1).sum();
        Some(offset + col)
    });
    let found = text.split("found: ").nth(1).map(|f| {
        let f = f.split(" at Line").next().unwrap_or(f).trim();
        f.to_string()
    });
    let message = match found {
        Some(f) if f == "EOF" => "syntax error at end of input".to_string(),
        Some(f) => format!("syntax error at or near \"{}\"", f.trim_matches('"')),
        None => format!("syntax error: {}", text.split(" at Line").next().unwrap_or(&text)),
    };
    Error::Syntax { message, position }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_position() {
        let err = parse("SELECT * FROM WHERE x").unwrap_err();
        assert_eq!(err.sqlstate(), "42601");
        assert_eq!(err.to_string(), "syntax error at or near \"WHERE\"");
        assert_eq!(err.position(), Some(15));
    }

    #[test]
    fn copy_booleans_accept_on_and_off() {
        let stmts = parse("copy t from stdin with (freeze on)").unwrap();
        assert!(stmts[0].to_string().to_uppercase().contains("FREEZE"), "{}", stmts[0]);
        assert!(parse("SELECT 'freeze on'").is_ok());
    }

    #[test]
    fn create_user_is_a_login_role() {
        let stmts = parse("CREATE USER bob WITH PASSWORD 'x'; create user carol nologin;").unwrap();
        let ast::Statement::CreateRole(bob) = &stmts[0] else { panic!("{:?}", stmts[0]) };
        assert_eq!(bob.login, Some(true));
        let ast::Statement::CreateRole(carol) = &stmts[1] else { panic!("{:?}", stmts[1]) };
        assert_eq!(carol.login, Some(false));
        assert!(parse("CREATE USER MAPPING FOR bob SERVER s").is_ok());
        assert_eq!(parse("SELECT 1 SELECT 2").unwrap_err().sqlstate(), "42601");
    }

    #[test]
    fn vacuum_takes_postgresql_options() {
        for sql in [
            "VACUUM",
            "vacuum analyze t",
            "VACUUM FULL FREEZE VERBOSE ANALYZE t",
            "VACUUM (ANALYZE, VERBOSE false) t",
            "vacuum t",
        ] {
            let stmts = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let [ast::Statement::Vacuum(v)] = stmts.as_slice() else { panic!("{sql}: {stmts:?}") };
            assert_eq!(v.table_name.as_ref().map(|n| n.to_string()), (sql.len() > 6).then(|| "t".to_string()), "{sql}");
        }
        assert!(matches!(&parse("VACUUM (FULL) t").unwrap()[0], ast::Statement::Vacuum(v) if v.full));
        assert_eq!(parse("VACUUM (BOGUS) t").unwrap_err().sqlstate(), "42601");
        assert_eq!(parse("VACUUM a, b").unwrap_err().sqlstate(), "42601");
    }

    #[test]
    fn ttl_extension() {
        let stmts = parse("CREATE TABLE m (ts TIMESTAMPTZ, v FLOAT) WITH TTL=7d").unwrap();
        assert!(stmts[0].to_string().contains("ttl = '7d'"), "{}", stmts[0]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&sql).is_err());
    }
}
