//! A Go `text/template` engine with sprig and Helm's functions: what Helm charts are written
//! in. `parse` reads the syntax, `exec` runs it, `funcs` holds the functions, `value` the data
//! model, `yaml` and `printf` the formats, `semver` the version rules.

pub mod exec;
pub mod funcs;
pub mod parse;
pub mod printf;
pub mod semver;
pub mod value;
pub mod yaml;

pub use exec::{Exec, Templates};
pub use value::{Map, Object, Value};

/// Why a template could not be parsed or run.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Bad syntax.
    #[error("{template}:{line}: parse error: {message}")]
    Parse {
        /// The template.
        template: String,
        /// Its line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A failure while running.
    #[error("{template}:{line}: {message}")]
    Exec {
        /// The template.
        template: String,
        /// Its line.
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// The chart called `fail` or `required` did not get its value.
    #[error("{template}: execution error: {message}")]
    Fail {
        /// The template.
        template: String,
        /// The chart's message.
        message: String,
    },
    /// `include`/`template` nested past Helm's limit (a template that recurses forever).
    #[error("{template}: rendering template has a nested reference name exceeded max recursion depth ({depth})")]
    Recursion {
        /// The template.
        template: String,
        /// The cap.
        depth: usize,
    },
    /// The render ran out of steps (a runaway loop).
    #[error("{template}: template execution exceeded its step budget")]
    Budget {
        /// The template.
        template: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders on a thread with the stack the engine runs with in production.
    fn render(src: &str, data: &str) -> Result<String, TemplateError> {
        let (src, data) = (src.to_string(), data.to_string());
        std::thread::Builder::new()
            .stack_size(512 << 20)
            .spawn(move || {
                let mut t = Templates::default();
                t.add("t", &src)?;
                let mut ex = Exec::new(&t, 1_000_000);
                ex.template_name = "t".into();
                ex.render_named("t", &yaml::from_yaml(&data).unwrap())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn go_template_basics() {
        let d = "a: 1\nb: [x, y]\nc: {k: v}\ns: hi\nf: 1000000\n";
        let cases = [
            ("{{ .a }}", "1"),
            ("{{ .f }}", "1e+06"),
            ("{{ .missing }}", "<no value>"),
            ("{{ .b }} {{ .c }}", "[x y] map[k:v]"),
            ("{{ if .a }}y{{ else }}n{{ end }}", "y"),
            ("{{ if .z }}y{{ else if .s }}s{{ end }}", "s"),
            (
                "{{ range $i, $v := .b }}{{ $i }}{{ $v }},{{ end }}",
                "0x,1y,",
            ),
            ("{{ range .z }}x{{ else }}empty{{ end }}", "empty"),
            ("{{ with .c }}{{ .k }}{{ end }}", "v"),
            ("{{ $x := 1 }}{{ $x = add $x 1 }}{{ $x }}", "2"),
            (
                "{{- define \"d\" }}[{{ . }}]{{ end -}} {{ include \"d\" .s | upper }}",
                "[HI]",
            ),
            ("{{ .s | printf \"%s-%d\" | quote }}", "\"hi-%!d(MISSING)\""),
            ("{{ and 1 0 }} {{ or 0 \"\" 3 }} {{ not .a }}", "0 3 false"),
            (
                "{{ eq .s \"hi\" }} {{ lt 1 2 }} {{ eq .a 1 }}",
                "true true true",
            ),
            (
                "{{ default \"d\" .missing }} {{ .missing | default \"e\" }}",
                "d e",
            ),
            ("{{ toYaml .c }}", "k: v"),
            ("{{ range $k, $v := .c }}{{ $k }}={{ $v }}{{ end }}", "k=v"),
            ("{{ range 3 }}{{ . }}{{ end }}", "012"),
            (
                "{{ range .b }}{{ if eq . \"x\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
                "y",
            ),
            ("{{ tpl \"{{ .s }}!\" . }}", "hi!"),
            (
                "{{ $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $d }}",
                "map[a:1 b:2]",
            ),
            ("{{ print 1 2 \"a\" 3 }}", "1 2a3"),
            ("{{ (index .b 1) }} {{ index .c \"k\" }}", "y v"),
            ("{{ semverCompare \">=1.19-0\" \"v1.36.0\" }}", "true"),
            (
                "{{ trunc 3 \"abcdef\" }}{{ trimSuffix \"-\" \"a-\" }}",
                "abca",
            ),
            ("{{ (dict \"x\" (dict \"y\" 5)).x.y }}", "5"),
            ("{{ 'a' }} {{ 0x10 }} {{ -1 }} {{ 1.5 }}", "97 16 -1 1.5"),
            ("{{ nindent 2 \"a\\nb\" }}", "\n  a\n  b"),
            (
                "{{ dig \"c\" \"k\" \"no\" . }} {{ dig \"c\" \"z\" \"no\" . }}",
                "v no",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(render(src, d).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn errors_name_the_template() {
        let e = render("{{ fail \"boom\" }}", "").unwrap_err();
        assert_eq!(e.to_string(), "t: execution error: boom");
        let e = render("{{ .a.b }}", "x: 1").unwrap_err();
        assert!(
            e.to_string()
                .contains("nil pointer evaluating interface {}.b"),
            "{e}"
        );
        let e = render(
            "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" . }}",
            "",
        )
        .unwrap_err();
        assert!(matches!(e, TemplateError::Recursion { .. }), "{e}");
        let e = render(
            "{{ range until 1000000 }}{{ range until 1000000 }}{{ end }}{{ end }}",
            "",
        )
        .unwrap_err();
        assert!(matches!(e, TemplateError::Budget { .. }), "{e}");
    }
}
