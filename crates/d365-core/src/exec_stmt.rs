//! `EXEC name @Arg = 'value', ...`: the CData connector's way of calling its stored procedures
//! from SQL. [`crate::Session::execute`] (so `d365 query` and Python's `cursor.execute`)
//! recognises the statement before it reaches the SQL engine and runs the sign-in procedures of
//! `d365-auth` (the same ones as `d365 proc`).

use std::fmt;

/// A parsed `EXEC` statement.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecStatement {
    /// The procedure name as written.
    pub name: String,
    /// `(name without @, value)` pairs in the order written.
    pub args: Vec<(String, String)>,
}

/// Why an `EXEC` statement could not be read; `position` is a 1-based character column.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecSyntaxError {
    /// 1-based character column where the statement went wrong.
    pub position: usize,
    /// What was expected there.
    pub message: String,
}

impl std::error::Error for ExecSyntaxError {}

impl fmt::Display for ExecSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EXEC syntax error at column {}: {} (expected: EXEC ProcedureName @Name = 'value', @Other = 'value')",
            self.position, self.message
        )
    }
}

/// Returns `Some` when the text is an `EXEC`/`EXECUTE` statement (case-insensitive, leading
/// whitespace and one trailing `;` allowed), parsed or with its syntax error; `None` for any
/// other statement.
pub fn parse_exec(sql: &str) -> Option<Result<ExecStatement, ExecSyntaxError>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut p = Parser { chars, pos: 0 };
    p.skip_ws();
    let keyword = p.word();
    if !keyword.eq_ignore_ascii_case("exec") && !keyword.eq_ignore_ascii_case("execute") {
        return None;
    }
    Some(p.statement())
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ExecSyntaxError> {
        Err(ExecSyntaxError { position: self.pos + 1, message: message.into() })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn statement(&mut self) -> Result<ExecStatement, ExecSyntaxError> {
        self.skip_ws();
        let name = if self.peek() == Some('[') {
            self.pos += 1;
            let start = self.pos;
            while self.peek().is_some_and(|c| c != ']') {
                self.pos += 1;
            }
            if self.peek() != Some(']') {
                return self.err("a '[' without its ']'");
            }
            let n: String = self.chars[start..self.pos].iter().collect();
            self.pos += 1;
            n
        } else {
            self.word()
        };
        if name.is_empty() {
            return self.err("a procedure name after EXEC");
        }
        let mut args = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(';') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek().is_some() {
                        return self.err("text after ';' (run one statement at a time)");
                    }
                    break;
                }
                Some(',') if !args.is_empty() => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(_) if args.is_empty() => {}
                Some(c) => return self.err(format!("',' between arguments, found '{c}'")),
            }
            if self.peek() != Some('@') {
                return self.err("an argument like @Name = 'value'");
            }
            self.pos += 1;
            let arg = self.word();
            if arg.is_empty() {
                return self.err("an argument name after '@'");
            }
            self.skip_ws();
            if self.peek() != Some('=') {
                return self.err(format!("'=' after @{arg}"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            args.push((arg, value));
        }
        Ok(ExecStatement { name, args })
    }

    /// A quoted string (`'it''s'`, `N'...'`), a number, or NULL/bare word.
    fn value(&mut self) -> Result<String, ExecSyntaxError> {
        if matches!(self.peek(), Some('N' | 'n')) && self.chars.get(self.pos + 1) == Some(&'\'') {
            self.pos += 1;
        }
        if self.peek() == Some('\'') {
            let start = self.pos;
            self.pos += 1;
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => {
                        self.pos = start;
                        return self.err("a string that is never closed (a quote inside a value is written '')");
                    }
                    Some('\'') if self.chars.get(self.pos + 1) == Some(&'\'') => {
                        out.push('\'');
                        self.pos += 2;
                    }
                    Some('\'') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(c) => {
                        out.push(c);
                        self.pos += 1;
                    }
                }
            }
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '+' | '_')) {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err("a value: a quoted string or a number");
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> ExecStatement {
        parse_exec(sql).expect("an EXEC").expect("valid")
    }

    #[test]
    fn reads_names_and_arguments() {
        let s = ok("  exec GetOAuthAuthorizationUrl @CallbackURL = 'http://localhost:33333', @State='a''b';");
        assert_eq!(s.name, "GetOAuthAuthorizationUrl");
        assert_eq!(
            s.args,
            vec![("CallbackURL".into(), "http://localhost:33333".into()), ("State".into(), "a'b".into())]
        );
        let s = ok("EXECUTE [GetAdminConsentURL] @x=N'y', @n = 42");
        assert_eq!(s.name, "GetAdminConsentURL");
        assert_eq!(s.args, vec![("x".into(), "y".into()), ("n".into(), "42".into())]);
        assert_eq!(ok("EXEC RefreshOAuthAccessToken").args, vec![]);
    }

    #[test]
    fn other_statements_are_not_exec() {
        assert!(parse_exec("SELECT 1").is_none());
        assert!(parse_exec("executive_summary").is_none());
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = parse_exec("EXEC P @a = 'x' @b = 'y'").unwrap().unwrap_err();
        assert_eq!(e.position, 17);
        assert!(e.to_string().contains("','"), "{e}");
        let e = parse_exec("EXEC P @a = 'never closed").unwrap().unwrap_err();
        assert_eq!(e.position, 13);
        let e = parse_exec("EXEC").unwrap().unwrap_err();
        assert!(e.message.contains("procedure name"));
        let e = parse_exec("EXEC P a = 1").unwrap().unwrap_err();
        assert!(e.message.contains("@Name"));
        let e = parse_exec("EXEC P @a 1").unwrap().unwrap_err();
        assert!(e.message.contains("'='"));
    }
}
