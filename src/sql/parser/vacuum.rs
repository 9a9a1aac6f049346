//! PostgreSQL's `VACUUM`, which sqlparser reads in another product's form:
//! `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table]` and `VACUUM (option [value], …) [table]`.
//! The options are accepted and change nothing (statistics are not kept; see `docs/sql.md`).

use sqlparser::ast;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// The options PostgreSQL 15 takes in parentheses.
const OPTIONS: [&str; 12] = [
    "full",
    "freeze",
    "verbose",
    "analyze",
    "analyse",
    "disable_page_skipping",
    "skip_locked",
    "index_cleanup",
    "process_toast",
    "truncate",
    "parallel",
    "skip_database_stats",
];

/// Parses a `VACUUM` statement (the parser at its first keyword).
pub fn parse(parser: &mut Parser) -> Result<ast::Statement, ParserError> {
    parser.expect_keyword(Keyword::VACUUM)?;
    let mut full = false;
    if parser.consume_token(&Token::LParen) {
        loop {
            let option = parser.parse_identifier()?;
            let name = option.value.to_ascii_lowercase();
            if !OPTIONS.contains(&name.as_str()) {
                return Err(ParserError::ParserError(format!("unrecognized VACUUM option \"{name}\"")));
            }
            let value = match parser.peek_token().token {
                Token::Comma | Token::RParen => true,
                _ => !matches!(parser.parse_value()?.value, ast::Value::Boolean(false)),
            };
            full |= name == "full" && value;
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser.expect_token(&Token::RParen)?;
    } else {
        full = parser.parse_keyword(Keyword::FULL);
        let _ = parser.parse_keyword(Keyword::FREEZE);
        let _ = parser.parse_keyword(Keyword::VERBOSE);
        let analyse = matches!(&parser.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("analyse"));
        if analyse || parser.peek_keyword(Keyword::ANALYZE) {
            parser.next_token();
        }
    }
    let table_name = match parser.peek_token().token {
        Token::SemiColon | Token::EOF => None,
        _ => Some(parser.parse_object_name(false)?),
    };
    Ok(ast::Statement::Vacuum(ast::VacuumStatement {
        full,
        sort_only: false,
        delete_only: false,
        reindex: false,
        recluster: false,
        table_name,
        threshold: None,
        boost: false,
    }))
}
