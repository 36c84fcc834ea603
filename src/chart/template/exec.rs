//! Executes parsed templates with Go `text/template` semantics and Helm's options
//! (`missingkey=zero`, `include`/`tpl` with a recursion cap), within a step budget.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::parse::{Arg, BranchKind, Cmd, List, Node, Pipe};
use super::value::{Object, Value};
use super::{funcs, TemplateError};

/// Helm's cap on nested `include`/`template` calls.
pub const MAX_INCLUDE_DEPTH: usize = 1000;
/// Nodes and calls one render may evaluate before it is stopped as runaway.
pub const DEFAULT_STEP_BUDGET: u64 = 50_000_000;
/// Largest string a template may build (output, `include` result, function result).
pub const MAX_STRING: usize = 64 << 20;

/// A set of named templates sharing one namespace, as Helm parses all of a chart's files into.
#[derive(Default)]
pub struct Templates {
    /// Name → body: files under their path, `define`s under their name.
    pub named: BTreeMap<String, Rc<List>>,
}

impl Templates {
    /// Parses `src` as the template `name` and adds it and its `define`s (later ones win).
    pub fn add(&mut self, name: &str, src: &str) -> Result<(), TemplateError> {
        let p = super::parse::parse(name, src)?;
        for (k, v) in p.defines {
            // Go keeps an existing definition when the new one is empty.
            if v.is_empty() && self.named.contains_key(&k) {
                continue;
            }
            self.named.insert(k, v);
        }
        self.named.insert(name.to_string(), Rc::new(p.root));
        Ok(())
    }
}

/// The state of one render.
pub struct Exec<'a> {
    /// All templates.
    pub templates: &'a Templates,
    steps_left: u64,
    depth: usize,
    vars: Vec<(String, Value)>,
    /// The file being rendered, for errors and `tpl`.
    pub template_name: String,
    line: usize,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

impl<'a> Exec<'a> {
    /// A new executor over `templates` with a step budget.
    pub fn new(templates: &'a Templates, budget: u64) -> Self {
        Exec {
            templates,
            steps_left: budget,
            depth: 0,
            vars: Vec::new(),
            template_name: String::new(),
            line: 0,
        }
    }

    /// An error at the current place.
    pub fn err(&self, message: impl Into<String>) -> TemplateError {
        TemplateError::Exec {
            template: self.template_name.clone(),
            line: self.line,
            message: message.into(),
        }
    }

    fn step(&mut self) -> Result<(), TemplateError> {
        if self.steps_left == 0 {
            return Err(TemplateError::Budget {
                template: self.template_name.clone(),
            });
        }
        self.steps_left -= 1;
        Ok(())
    }

    /// Renders the named template with `dot`, returning its text.
    pub fn render_named(&mut self, name: &str, dot: &Value) -> Result<String, TemplateError> {
        let Some(body) = self.templates.named.get(name).cloned() else {
            return Err(self.err(format!("no template {name:?} associated with template")));
        };
        self.run_list(&body, dot)
    }

    /// Runs a parsed body as a new template call: fresh variables with `$` = `dot`.
    pub fn run_list(&mut self, body: &List, dot: &Value) -> Result<String, TemplateError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(TemplateError::Recursion {
                template: self.template_name.clone(),
                depth: MAX_INCLUDE_DEPTH,
            });
        }
        self.depth += 1;
        let saved = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        let mut out = String::new();
        let r = self.walk(body, dot, &mut out);
        self.vars = saved;
        self.depth -= 1;
        r?;
        Ok(out)
    }

    fn walk(&mut self, list: &List, dot: &Value, out: &mut String) -> Result<Flow, TemplateError> {
        for node in list {
            self.step()?;
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&v.template_string());
                    }
                }
                Node::Branch {
                    kind,
                    pipe,
                    list,
                    else_list,
                } => {
                    let mark = self.vars.len();
                    let f = self.branch(*kind, pipe, list, else_list.as_ref(), dot, out);
                    self.vars.truncate(mark);
                    match f? {
                        Flow::Normal => {}
                        f => return Ok(f),
                    }
                }
                Node::Template { name, pipe, line } => {
                    self.line = *line;
                    let d = match pipe {
                        Some(p) => self.pipeline(p, dot)?,
                        None => Value::Nil,
                    };
                    let s = self.render_named(name, &d)?;
                    out.push_str(&s);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
            if out.len() > MAX_STRING {
                return Err(self.err("output larger than 64 MiB"));
            }
        }
        Ok(Flow::Normal)
    }

    fn branch(
        &mut self,
        kind: BranchKind,
        pipe: &Pipe,
        list: &List,
        else_list: Option<&List>,
        dot: &Value,
        out: &mut String,
    ) -> Result<Flow, TemplateError> {
        let v = self.pipeline(pipe, dot)?;
        match kind {
            BranchKind::If | BranchKind::With => {
                if v.truthy() {
                    let d = if kind == BranchKind::With { &v } else { dot };
                    self.walk(list, d, out)
                } else if let Some(e) = else_list {
                    self.walk(e, dot, out)
                } else {
                    Ok(Flow::Normal)
                }
            }
            BranchKind::Range => {
                let items: Vec<(Value, Value)> = match &v {
                    Value::List(l) => l
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                        .collect(),
                    Value::Map(m) => m
                        .borrow()
                        .iter()
                        .map(|(k, x)| (Value::str(k.as_str()), x.clone()))
                        .collect(),
                    Value::Int(n) => {
                        if *n > 10_000_000 {
                            return Err(self.err("range over an integer too large"));
                        }
                        (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
                    }
                    Value::Nil => Vec::new(),
                    Value::Obj(o) => match &**o {
                        Object::ApiVersions(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::Int(i as i64), Value::str(x.as_str())))
                            .collect(),
                        Object::Files(f) => f
                            .iter()
                            .map(|(k, x)| {
                                (
                                    Value::str(k.as_str()),
                                    Value::str(String::from_utf8_lossy(x).as_ref()),
                                )
                            })
                            .collect(),
                        _ => {
                            return Err(
                                self.err(format!("range can't iterate over {}", v.go_string()))
                            )
                        }
                    },
                    v => {
                        return Err(self.err(format!("range can't iterate over {}", v.go_string())))
                    }
                };
                if items.is_empty() {
                    if let Some(e) = else_list {
                        return self.walk(e, dot, out);
                    }
                    return Ok(Flow::Normal);
                }
                let mark = self.vars.len();
                for (k, x) in items {
                    self.step()?;
                    self.vars.truncate(mark);
                    match pipe.decl.len() {
                        1 => self.vars.push((pipe.decl[0].clone(), x.clone())),
                        2 => {
                            self.vars.push((pipe.decl[0].clone(), k));
                            self.vars.push((pipe.decl[1].clone(), x.clone()));
                        }
                        _ => {}
                    }
                    match self.walk(list, &x, out)? {
                        Flow::Break => break,
                        Flow::Continue | Flow::Normal => {}
                    }
                }
                Ok(Flow::Normal)
            }
        }
    }

    fn set_var(&mut self, name: &str, v: Value, declare: bool) -> Result<(), TemplateError> {
        if declare {
            self.vars.push((name.to_string(), v));
            return Ok(());
        }
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.err(format!("undefined variable: {name}"))),
        }
    }

    fn var(&self, name: &str) -> Result<Value, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(format!("undefined variable: {name}")))
    }

    /// Evaluates a pipeline (declaring its variables, except for `range` which does it per item).
    pub fn pipeline(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, TemplateError> {
        self.line = pipe.line;
        let mut val: Option<Value> = None;
        for cmd in &pipe.cmds {
            val = Some(self.command(cmd, dot, val)?);
        }
        let v = val.unwrap_or(Value::Nil);
        // In `range` the variables are set per element; elsewhere here.
        if !pipe.decl.is_empty() {
            self.set_var(&pipe.decl[0], v.clone(), !pipe.is_assign)?;
        }
        Ok(v)
    }

    fn command(
        &mut self,
        cmd: &Cmd,
        dot: &Value,
        fin: Option<Value>,
    ) -> Result<Value, TemplateError> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Arg::Ident(name) => {
                let name = name.clone();
                funcs::call(self, &name, &cmd.args[1..], dot, fin)
            }
            _ => {
                if cmd.args.len() > 1 || fin.is_some() {
                    // A method call with arguments: only Helm's objects have methods.
                    return self.method_call(first, &cmd.args[1..], dot, fin);
                }
                self.arg(first, dot)
            }
        }
    }

    fn method_call(
        &mut self,
        first: &Arg,
        rest: &[Arg],
        dot: &Value,
        fin: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let (recv, fields) = match first {
            Arg::Field(f) if !f.is_empty() => (dot.clone(), f.as_slice()),
            Arg::Var(v, f) if !f.is_empty() => (self.var(v)?, f.as_slice()),
            Arg::Pipe(p, f) if !f.is_empty() => (self.pipeline(p, dot)?, f.as_slice()),
            _ => return Err(self.err("can't give argument to non-function")),
        };
        let (last, path) = fields.split_last().expect("non-empty");
        let mut r = recv;
        for f in path {
            r = self.field(&r, f)?;
        }
        let mut args = Vec::new();
        for a in rest {
            args.push(self.arg(a, dot)?);
        }
        if let Some(f) = fin {
            args.push(f);
        }
        funcs::method(self, &r, last, args)
    }

    /// Evaluates one argument.
    pub fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        Ok(match a {
            Arg::Field(f) => self.chain(dot.clone(), f)?,
            Arg::Var(v, f) => {
                let base = self.var(v)?;
                self.chain(base, f)?
            }
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Number(i, f) => match i {
                Some(i) => Value::Int(*i),
                None => Value::Float(*f),
            },
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Ident(name) => {
                let name = name.clone();
                funcs::call(self, &name, &[], dot, None)?
            }
            Arg::Pipe(p, f) => {
                let v = self.pipeline(p, dot)?;
                self.chain(v, f)?
            }
        })
    }

    /// A field chain. A nil receiver from a variable, `.` or parentheses is Go's invalid value
    /// and yields nil; a nil met inside the chain (a missing key) is an error, as in Go.
    fn chain(&mut self, mut v: Value, fields: &[String]) -> Result<Value, TemplateError> {
        if matches!(v, Value::Nil) {
            return Ok(Value::Nil);
        }
        for f in fields {
            v = self.field(&v, f)?;
        }
        Ok(v)
    }

    /// `.name` on a value: map lookup (missing is nil) or a Helm object's field.
    pub fn field(&mut self, v: &Value, name: &str) -> Result<Value, TemplateError> {
        match v {
            Value::Map(m) => Ok(m.borrow().get(name).cloned().unwrap_or(Value::Nil)),
            Value::Nil => Err(self.err(format!("nil pointer evaluating interface {{}}.{name}"))),
            Value::Obj(_) => funcs::method(self, v, name, Vec::new()),
            other => Err(self.err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            ))),
        }
    }
}
