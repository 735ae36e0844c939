//! Messages on standard error and short reports on standard output that never panic.
//! `eprintln!` and `println!` panic when their stream is a closed pipe (`d365 … 2>&1 | head`), and
//! text the reader stopped reading is not worth a crash: `note!` / `note_inline!` stand for
//! `eprintln!` / `eprint!`, `say!` / `say_inline!` for `println!` / `print!`, all ignoring write
//! errors.

/// `eprintln!` that ignores a closed standard error.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that ignores a closed standard error.
macro_rules! note_inline {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut err = std::io::stderr();
        let _ = write!(err, $($arg)*);
        let _ = err.flush();
    }};
}

/// `println!` for the short reports of commands (`tables`, `describe`, `whoami`, …) that ignores
/// a reader that went away (`d365 tables | head -3`); large outputs go through the query
/// output's writers, which end the command on a closed pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a reader that went away.
macro_rules! say_inline {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = write!(out, $($arg)*);
        let _ = out.flush();
    }};
}
