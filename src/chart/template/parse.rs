//! Go `text/template` syntax: the lexer and the parser, producing the tree `exec` walks.
//!
//! Follows `text/template/parse`: `{{`/`}}` actions, `{{- `/` -}}` whitespace trimming,
//! `/* */` comments, pipelines with declarations, and the `if`/`else if`/`with`/`range`/
//! `define`/`template`/`block`/`break`/`continue` structure.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::TemplateError;

/// A list of nodes.
pub type List = Vec<Node>;

/// A node of a parsed template.
#[derive(Debug)]
pub enum Node {
    /// Literal text.
    Text(Rc<str>),
    /// `{{ pipeline }}`.
    Action(Pipe),
    /// `{{if}}`, `{{with}}` or `{{range}}` with its branches.
    Branch {
        /// Which one.
        kind: BranchKind,
        /// The condition / data.
        pipe: Pipe,
        /// The body.
        list: List,
        /// The `else` part.
        else_list: Option<List>,
    },
    /// `{{template "name" pipeline}}`.
    Template {
        /// The template's name.
        name: String,
        /// Its data.
        pipe: Option<Pipe>,
        /// Line, for errors.
        line: usize,
    },
    /// `{{break}}`.
    Break,
    /// `{{continue}}`.
    Continue,
}

/// The three branching actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchKind {
    /// `if`.
    If,
    /// `with`.
    With,
    /// `range`.
    Range,
}

/// A pipeline: optional variable declarations and commands joined by `|`.
#[derive(Debug)]
pub struct Pipe {
    /// Declared or assigned variables (`$x :=`, `$i, $v :=`).
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub is_assign: bool,
    /// The commands.
    pub cmds: Vec<Cmd>,
    /// Line, for errors.
    pub line: usize,
}

/// One command: a function or value with arguments.
#[derive(Debug)]
pub struct Cmd {
    /// The words.
    pub args: Vec<Arg>,
}

/// One word of a command.
#[derive(Debug)]
pub enum Arg {
    /// `.A.B` (empty for `.`).
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A number constant: integer value when it is one, and its float value.
    Number(Option<i64>, f64),
    /// A string constant.
    Str(Rc<str>),
    /// A function name.
    Ident(String),
    /// `( pipeline )`, with a field chain after it.
    Pipe(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Space,
    Ident(String),
    Field(String),
    Var(String),
    Dot,
    Str(String),
    Number(String),
    Char(char),
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
}

const MAX_NESTING: usize = 200;

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    toks: Vec<(Tok, usize)>,
    name: &'a str,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl<'a> Lexer<'a> {
    fn err(&self, msg: impl Into<String>) -> TemplateError {
        TemplateError::Parse {
            template: self.name.to_string(),
            line: self.line,
            message: msg.into(),
        }
    }

    fn run(mut self) -> Result<Vec<(Tok, usize)>, TemplateError> {
        let mut trim_next = false;
        loop {
            let rest = &self.src[self.pos..];
            let Some(open) = rest.find("{{") else {
                let mut text = rest;
                if trim_next {
                    text = text.trim_start_matches(is_space);
                }
                if !text.is_empty() {
                    self.toks.push((Tok::Text(text.to_string()), self.line));
                }
                return Ok(self.toks);
            };
            let mut text = &rest[..open];
            let after = &rest[open + 2..];
            let trim_left = after.starts_with('-') && after[1..].starts_with(is_space);
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.toks.push((Tok::Text(text.to_string()), self.line));
            }
            self.line += rest[..open].matches('\n').count();
            self.pos += open + 2;
            if trim_left {
                self.pos += 2;
            }
            // A comment.
            let inner = &self.src[self.pos..];
            let ws = inner.len() - inner.trim_start_matches(is_space).len();
            if inner[ws..].starts_with("/*") {
                let Some(end) = inner.find("*/") else {
                    return Err(self.err("unclosed comment"));
                };
                self.line += inner[..end].matches('\n').count();
                self.pos += end + 2;
                let r = &self.src[self.pos..];
                if r.starts_with("}}") {
                    self.pos += 2;
                    trim_next = false;
                } else if r.starts_with(" -}}") || r.starts_with("\t-}}") || r.starts_with("\n-}}")
                {
                    self.pos += 4;
                    trim_next = true;
                } else {
                    return Err(self.err("comment ends before closing delimiter"));
                }
                continue;
            }
            self.toks.push((Tok::Open, self.line));
            trim_next = self.action()?;
        }
    }

    /// Lexes inside an action; returns whether the close delimiter trims what follows.
    fn action(&mut self) -> Result<bool, TemplateError> {
        let mut depth = 0usize;
        loop {
            let rest = &self.src[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(self.err("unclosed action"));
            };
            if rest.starts_with("}}") {
                self.pos += 2;
                self.toks.push((Tok::Close, self.line));
                return Ok(false);
            }
            if is_space(c) {
                // ` -}}` trims.
                let n = rest.len() - rest.trim_start_matches(is_space).len();
                let after = &rest[n..];
                if after.starts_with("-}}") {
                    self.line += rest[..n].matches('\n').count();
                    self.pos += n + 3;
                    self.toks.push((Tok::Close, self.line));
                    return Ok(true);
                }
                self.line += rest[..n].matches('\n').count();
                self.pos += n;
                self.toks.push((Tok::Space, self.line));
                continue;
            }
            match c {
                '|' => self.one(Tok::Pipe),
                '(' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(self.err("parentheses nested too deeply"));
                    }
                    self.one(Tok::LParen)
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    self.one(Tok::RParen)
                }
                ',' => self.one(Tok::Comma),
                ':' => {
                    if rest.starts_with(":=") {
                        self.pos += 2;
                        self.toks.push((Tok::Declare, self.line));
                    } else {
                        return Err(self.err("expected :="));
                    }
                }
                '=' => self.one(Tok::Assign),
                '"' => {
                    let s = self.quoted()?;
                    self.toks.push((Tok::Str(s), self.line));
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return Err(self.err("unterminated raw quoted string"));
                    };
                    let s = rest[1..1 + end].to_string();
                    self.line += s.matches('\n').count();
                    self.pos += end + 2;
                    self.toks.push((Tok::Str(s), self.line));
                }
                '\'' => {
                    let body = &rest[1..];
                    let (ch, used) = if let Some(b) = body.strip_prefix('\\') {
                        let mut it = b.chars();
                        let e = it
                            .next()
                            .ok_or_else(|| self.err("bad character constant"))?;
                        (unescape_char(e), 1 + e.len_utf8())
                    } else {
                        let ch = body
                            .chars()
                            .next()
                            .ok_or_else(|| self.err("bad character"))?;
                        (ch, ch.len_utf8())
                    };
                    if !body[used..].starts_with('\'') {
                        return Err(self.err("unterminated character constant"));
                    }
                    self.pos += used + 2;
                    self.toks.push((Tok::Char(ch), self.line));
                }
                '$' => {
                    let n = 1 + ident_len(&rest[1..]);
                    self.toks.push((Tok::Var(rest[..n].to_string()), self.line));
                    self.pos += n;
                }
                '.' => {
                    let n = ident_len(&rest[1..]);
                    if n == 0 {
                        if rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                            self.number()?;
                        } else {
                            self.one(Tok::Dot);
                        }
                    } else {
                        self.toks
                            .push((Tok::Field(rest[1..1 + n].to_string()), self.line));
                        self.pos += 1 + n;
                    }
                }
                c if c.is_ascii_digit() || c == '-' || c == '+' => self.number()?,
                c if c.is_alphabetic() || c == '_' => {
                    let n = ident_len(rest);
                    self.toks
                        .push((Tok::Ident(rest[..n].to_string()), self.line));
                    self.pos += n;
                }
                c => return Err(self.err(format!("unexpected {c:?} in action"))),
            }
        }
    }

    fn one(&mut self, t: Tok) {
        self.pos += 1;
        self.toks.push((t, self.line));
    }

    fn number(&mut self) -> Result<(), TemplateError> {
        let rest = &self.src[self.pos..];
        let mut n = 0;
        for (i, c) in rest.char_indices() {
            let ok = c.is_ascii_alphanumeric()
                || c == '.'
                || c == '_'
                || ((c == '-' || c == '+')
                    && (i == 0 || matches!(rest.as_bytes()[i - 1], b'e' | b'E' | b'p' | b'P')));
            if !ok {
                break;
            }
            n = i + c.len_utf8();
        }
        if n == 0 || (n == 1 && matches!(&rest[..1], "-" | "+")) {
            return Err(self.err("bad number syntax"));
        }
        self.toks
            .push((Tok::Number(rest[..n].to_string()), self.line));
        self.pos += n;
        Ok(())
    }

    fn quoted(&mut self) -> Result<String, TemplateError> {
        let rest = &self.src[self.pos + 1..];
        let mut out = String::new();
        let mut it = rest.char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '"' => {
                    self.pos += i + 2;
                    return Ok(out);
                }
                '\n' => return Err(self.err("unterminated quoted string")),
                '\\' => {
                    let Some((_, e)) = it.next() else { break };
                    match e {
                        'x' | 'u' | 'U' => {
                            let len = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let mut hex = String::new();
                            for _ in 0..len {
                                if let Some((_, h)) = it.next() {
                                    hex.push(h);
                                }
                            }
                            let v = u32::from_str_radix(&hex, 16)
                                .map_err(|_| self.err("bad escape in string"))?;
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                        '0'..='7' => {
                            let mut oct = e.to_string();
                            for _ in 0..2 {
                                if let Some((_, h)) = it.next() {
                                    oct.push(h);
                                }
                            }
                            let v = u32::from_str_radix(&oct, 8)
                                .map_err(|_| self.err("bad escape in string"))?;
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                        e => out.push(unescape_char(e)),
                    }
                }
                c => out.push(c),
            }
        }
        Err(self.err("unterminated quoted string"))
    }
}

fn unescape_char(e: char) -> char {
    match e {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'v' => '\x0b',
        '0' => '\0',
        c => c,
    }
}

fn ident_len(s: &str) -> usize {
    s.char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map(|(i, _)| i)
        .unwrap_or(s.len())
}

/// A parsed file: its body and the templates it `define`s.
pub struct Parsed {
    /// The body.
    pub root: List,
    /// `define`d and `block` templates.
    pub defines: BTreeMap<String, Rc<List>>,
}

/// Parses a template's text.
pub fn parse(name: &str, src: &str) -> Result<Parsed, TemplateError> {
    let toks = Lexer {
        src,
        pos: 0,
        line: 1,
        toks: Vec::new(),
        name,
    }
    .run()?;
    let mut p = Parser {
        toks,
        pos: 0,
        name,
        defines: BTreeMap::new(),
        depth: 0,
    };
    let (root, end) = p.list(true)?;
    if let Some(e) = end {
        return Err(p.err(format!("unexpected {{{{{e}}}}}")));
    }
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    name: &'a str,
    defines: BTreeMap<String, Rc<List>>,
    depth: usize,
}

/// What ended a list: `end`, `else`, or `else if …` (the rest is left to read).
type Ender = &'static str;

impl Parser<'_> {
    fn line(&self) -> usize {
        self.toks
            .get(self.pos.min(self.toks.len().saturating_sub(1)))
            .map(|t| t.1)
            .unwrap_or(0)
    }
    fn err(&self, msg: impl Into<String>) -> TemplateError {
        TemplateError::Parse {
            template: self.name.to_string(),
            line: self.line(),
            message: msg.into(),
        }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }
    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.pos += 1;
        }
    }
    fn expect_close(&mut self) -> Result<(), TemplateError> {
        self.skip_space();
        match self.next() {
            Some(Tok::Close) => Ok(()),
            t => Err(self.err(format!("unexpected {t:?}, expected }}}}"))),
        }
    }

    /// Parses nodes until `{{end}}`/`{{else}}` (returned) or the end of input (top only).
    fn list(&mut self, top: bool) -> Result<(List, Option<Ender>), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err("actions nested too deeply"));
        }
        let mut out = Vec::new();
        loop {
            let Some(t) = self.next() else {
                self.depth -= 1;
                if top {
                    return Ok((out, None));
                }
                return Err(self.err("unexpected EOF"));
            };
            match t {
                Tok::Text(s) => out.push(Node::Text(s.into())),
                Tok::Open => {
                    self.skip_space();
                    let line = self.line();
                    if let Some(Tok::Ident(kw)) = self.peek().cloned() {
                        match kw.as_str() {
                            "end" => {
                                self.pos += 1;
                                self.expect_close()?;
                                self.depth -= 1;
                                return Ok((out, Some("end")));
                            }
                            "else" => {
                                self.pos += 1;
                                self.skip_space();
                                self.depth -= 1;
                                if self.peek() == Some(&Tok::Close) {
                                    self.pos += 1;
                                    return Ok((out, Some("else")));
                                }
                                // `else if` / `else with`: leave the keyword for the caller.
                                return Ok((out, Some("elsechain")));
                            }
                            "if" | "with" | "range" => {
                                self.pos += 1;
                                let kind = match kw.as_str() {
                                    "if" => BranchKind::If,
                                    "with" => BranchKind::With,
                                    _ => BranchKind::Range,
                                };
                                out.push(self.branch(kind)?);
                                continue;
                            }
                            "break" | "continue" => {
                                self.pos += 1;
                                self.expect_close()?;
                                out.push(if kw == "break" {
                                    Node::Break
                                } else {
                                    Node::Continue
                                });
                                continue;
                            }
                            "define" | "block" | "template" => {
                                self.pos += 1;
                                self.skip_space();
                                let name = match self.next() {
                                    Some(Tok::Str(s)) => s,
                                    t => {
                                        return Err(
                                            self.err(format!("{kw}: expected a name, got {t:?}"))
                                        )
                                    }
                                };
                                self.skip_space();
                                let pipe = if self.peek() == Some(&Tok::Close) {
                                    self.pos += 1;
                                    None
                                } else {
                                    Some(self.pipeline(true)?)
                                };
                                if kw == "template" {
                                    out.push(Node::Template { name, pipe, line });
                                    continue;
                                }
                                if kw == "define" && pipe.is_some() {
                                    return Err(self.err("define takes only a name"));
                                }
                                let (body, end) = self.list(false)?;
                                if end != Some("end") {
                                    return Err(self.err(format!("unexpected else in {kw}")));
                                }
                                self.defines.insert(name.clone(), Rc::new(body));
                                if kw == "block" {
                                    out.push(Node::Template { name, pipe, line });
                                }
                                continue;
                            }
                            _ => {}
                        }
                    }
                    let pipe = self.pipeline(true)?;
                    out.push(Node::Action(pipe));
                }
                t => return Err(self.err(format!("unexpected {t:?}"))),
            }
        }
    }

    fn branch(&mut self, kind: BranchKind) -> Result<Node, TemplateError> {
        let pipe = self.pipeline(true)?;
        let (list, end) = self.list(false)?;
        let else_list = match end {
            Some("end") => None,
            Some("else") => {
                let (l, e) = self.list(false)?;
                if e != Some("end") {
                    return Err(self.err("expected end after else"));
                }
                Some(l)
            }
            Some("elsechain") => {
                let kw = match self.next() {
                    Some(Tok::Ident(k)) if k == "if" || k == "with" => k,
                    t => return Err(self.err(format!("unexpected {t:?} after else"))),
                };
                let k = if kw == "if" {
                    BranchKind::If
                } else {
                    BranchKind::With
                };
                // `{{else if x}}…{{end}}` shares the outer `end`.
                Some(vec![self.branch(k)?])
            }
            _ => return Err(self.err("unexpected EOF")),
        };
        Ok(Node::Branch {
            kind,
            pipe,
            list,
            else_list,
        })
    }

    /// Parses a pipeline up to `}}` (when `action`) or `)`.
    fn pipeline(&mut self, action: bool) -> Result<Pipe, TemplateError> {
        let line = self.line();
        self.skip_space();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $v :=`.
        let save = self.pos;
        let mut vars = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Tok::Var(v)) => {
                    self.pos += 1;
                    vars.push(v);
                    self.skip_space();
                    match self.peek() {
                        Some(Tok::Comma) if vars.len() == 1 => {
                            self.pos += 1;
                            self.skip_space();
                            continue;
                        }
                        Some(Tok::Declare) => {
                            self.pos += 1;
                            decl = vars;
                            break;
                        }
                        Some(Tok::Assign) => {
                            self.pos += 1;
                            decl = vars;
                            is_assign = true;
                            break;
                        }
                        _ => {
                            self.pos = save;
                            break;
                        }
                    }
                }
                _ => {
                    self.pos = save;
                    break;
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            let mut args = Vec::new();
            loop {
                self.skip_space();
                match self.peek() {
                    Some(Tok::Close) if action => break,
                    Some(Tok::RParen) if !action => break,
                    Some(Tok::Pipe) => break,
                    None => return Err(self.err("unclosed action")),
                    _ => {}
                }
                args.push(self.operand()?);
                // Operands are separated by spaces; anything else ends the command.
                match self.peek() {
                    Some(Tok::Space) | Some(Tok::Close) | Some(Tok::RParen) | Some(Tok::Pipe) => {}
                    t => return Err(self.err(format!("unexpected {t:?} in operand"))),
                }
            }
            if args.is_empty() {
                return Err(self.err("missing value for command"));
            }
            cmds.push(Cmd { args });
            match self.next() {
                Some(Tok::Pipe) => continue,
                Some(Tok::Close) | Some(Tok::RParen) => break,
                t => return Err(self.err(format!("unexpected {t:?} in pipeline"))),
            }
        }
        Ok(Pipe {
            decl,
            is_assign,
            cmds,
            line,
        })
    }

    fn fields(&mut self) -> Vec<String> {
        let mut f = Vec::new();
        while let Some(Tok::Field(s)) = self.peek().cloned() {
            f.push(s);
            self.pos += 1;
        }
        f
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let t = self.next().ok_or_else(|| self.err("unexpected EOF"))?;
        Ok(match t {
            Tok::Field(s) => {
                let mut f = vec![s];
                f.extend(self.fields());
                Arg::Field(f)
            }
            Tok::Dot => Arg::Field(vec![]),
            Tok::Var(v) => {
                let f = self.fields();
                Arg::Var(v, f)
            }
            Tok::Str(s) => Arg::Str(s.into()),
            Tok::Char(c) => Arg::Number(Some(c as i64), c as u32 as f64),
            Tok::Number(n) => {
                parse_number(&n).ok_or_else(|| self.err(format!("bad number {n}")))?
            }
            Tok::Ident(i) => match i.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Ident(i),
            },
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(self.err("parentheses nested too deeply"));
                }
                let p = self.pipeline(false)?;
                self.depth -= 1;
                let f = self.fields();
                Arg::Pipe(Box::new(p), f)
            }
            t => return Err(self.err(format!("unexpected {t:?} in operand"))),
        })
    }
}

fn parse_number(s: &str) -> Option<Arg> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.chars().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    let int = int.map(|i| if neg { -i } else { i });
    let float = match int {
        Some(i) => i as f64,
        None if lower.starts_with("0x") && lower.contains('p') => {
            let (m, e) = lower[2..].split_once('p')?;
            let (ip, fp) = m.split_once('.').unwrap_or((m, ""));
            let mut f = 0f64;
            for c in ip.chars().chain(fp.chars()) {
                f = f * 16.0 + f64::from(c.to_digit(16)?);
            }
            f /= 16f64.powi(fp.len() as i32);
            let f = f * 2f64.powi(e.parse().ok()?);
            if neg {
                -f
            } else {
                f
            }
        }
        None => {
            let f: f64 = lower.parse().ok()?;
            if neg {
                -f
            } else {
                f
            }
        }
    };
    Some(Arg::Number(int, float))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_comments() {
        let p = parse("t", "a  {{- /* c */ -}}  b {{- 1 }}").unwrap();
        assert_eq!(p.root.len(), 3);
        assert!(matches!(&p.root[0], Node::Text(t) if &**t == "a"));
        assert!(matches!(&p.root[1], Node::Text(t) if &**t == "b"));
    }

    #[test]
    fn rejects_unclosed() {
        assert!(parse("t", "{{ if .x }}").is_err());
        assert!(parse("t", "{{ .x ").is_err());
        assert!(parse("t", "{{ end }}").is_err());
    }
}
