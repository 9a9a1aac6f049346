//! SQL parsing: sqlparser's PostgreSQL dialect plus ChronosDB's extensions.
//!
//! Extension: `CREATE TABLE … WITH TTL=7d` (no parentheses) is accepted as a spelling of the
//! standard `WITH (ttl = '7d')`.

use crate::error::{Error, Result};
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

/// Statements nested deeper than this are rejected instead of exhausting the stack.
const RECURSION_LIMIT: usize = 200;

/// Parses a string of zero or more `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<ast::Statement>> {
    let rewritten = rewrite_copy_booleans(&rewrite_ttl(sql));
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(&rewritten)
        .and_then(|mut p| parse_statements(&mut p))
        .map_err(|e| syntax_error(&rewritten, e))
}

/// sqlparser's statement loop, plus PostgreSQL's `CREATE USER` (a `CREATE ROLE` that defaults
/// to LOGIN), which the PostgreSQL dialect parses as another product's statement.
fn parse_statements(parser: &mut Parser) -> std::result::Result<Vec<ast::Statement>, ParserError> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Word};
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
        let statement = if create_user {
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

/// Parses one expression (column defaults).
pub fn parse_expr(sql: &str) -> Result<ast::Expr> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| syntax_error(sql, e))
}

/// Converts a parser error into PostgreSQL's `syntax error at or near "…"` with a position.
fn syntax_error(sql: &str, err: ParserError) -> Error {
    let text = match &err {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return Error::Syntax { message: "statement is too deeply nested".into(), position: None }
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

/// PostgreSQL accepts `on`/`off` for COPY's boolean options (`WITH (FREEZE ON)`, as pgbench
/// sends); sqlparser only takes `true`/`false`.
fn rewrite_copy_booleans(sql: &str) -> String {
    if !sql.trim_start().to_ascii_lowercase().starts_with("copy") {
        return sql.to_string();
    }
    let mut out = sql.to_string();
    for option in ["freeze", "header"] {
        for (word, value) in [("on", "true"), ("off", "false")] {
            loop {
                let lower = out.to_ascii_lowercase();
                let pattern = format!("{option} {word}");
                let Some(at) = lower.find(&pattern) else { break };
                let end = at + pattern.len();
                if lower[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                    break;
                }
                out.replace_range(at + option.len() + 1..end, value);
            }
        }
    }
    out
}

/// Rewrites a trailing `WITH TTL=<interval>` into `WITH (ttl = '<interval>')`.
fn rewrite_ttl(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let Some(at) = upper.find("WITH TTL") else { return sql.to_string() };
    let rest = &sql[at + "WITH TTL".len()..];
    let Some(eq) = rest.find('=') else { return sql.to_string() };
    if !rest[..eq].trim().is_empty() {
        return sql.to_string();
    }
    let after = rest[eq + 1..].trim_start();
    let end = after.find(|c: char| c == ';' || c.is_whitespace()).unwrap_or(after.len());
    let value = after[..end].trim_matches('\'');
    format!("{}WITH (ttl = '{}'){}", &sql[..at], value, &after[end..])
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
