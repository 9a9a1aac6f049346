fn main() {
    let sql = std::env::args().nth(1).unwrap();
    let stmts = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &sql);
    println!("{stmts:#?}");
}
