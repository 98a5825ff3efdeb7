//! The page: escaping, the Content-Security-Policy, the one stylesheet, and the small pieces
//! (figures, tables, notes) the reports are built of.
//!
//! The page fetches nothing: no script, no image, no font, no stylesheet link. Its policy is
//! `default-src 'none'` plus the stylesheet by its hash ([`csp`]): the plots' SVG styles itself
//! with presentation attributes (`fill`, `stroke`, `font-size`), which a style policy does not
//! govern, so no `'unsafe-inline'` is needed and an injected `<style>` or `style=""` would not
//! apply.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use super::plots::PlotError;

/// The stylesheet, inline in the page (pinned by its hash in the policy).
pub(crate) const CSS: &str = "
body{font-family:'Liberation Sans',Arial,Helvetica,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1b1b1b;background:#fff;line-height:1.4}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1rem;margin:.2rem 0}
.banner{padding:.8rem 1rem;border-radius:6px;color:#fff}
.banner p{margin:.2rem 0}
.passed{background:#2e7d32}.failed{background:#c62828}.inconclusive{background:#f9a825;color:#1b1b1b}.invalid{background:#6a1b9a}
td.passed,td.failed,td.inconclusive,td.invalid{color:#fff;font-weight:bold;text-align:center}
td.inconclusive{color:#1b1b1b}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0;padding:.5rem;border:1px solid #e3e3e3;border-radius:6px}
figcaption p{margin:.2rem 0;color:#555;font-size:.85rem}
svg.plot{width:100%;height:auto;display:block}
.missing{color:#8a5a00;background:#fff6e0;padding:.4rem .6rem;border-left:4px solid #f9a825}
ul.notes li{margin:.15rem 0}
footer{margin-top:2rem;color:#777;font-size:.8rem}
";

/// The page's Content-Security-Policy: nothing may be fetched or run; only [`CSS`] applies.
pub(crate) fn csp() -> String {
    let hash = BASE64.encode(Sha256::digest(CSS.as_bytes()));
    format!("default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'")
}

/// `text` safe as HTML text or inside a quoted attribute.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for people: up to 4 significant digits, no exponent for everyday sizes.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if !(1e-4..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.decimals$}")
    };
    trim_zeros(s)
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A number or `missing`.
pub(crate) fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "missing".to_string(), num)
}

/// The whole page around `body`.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        csp = csp(),
        title = esc(title),
    )
}

/// A plot in its figure: the title (also the SVG's `<title>`), a note under it, or in place of
/// the plot a line saying why it could not be drawn.
pub(crate) fn figure(id: &str, title: &str, note: &str, svg: Result<String, PlotError>) -> String {
    let body = match svg {
        Ok(svg) => svg,
        Err(e) => missing(&e.to_string()),
    };
    let note = if note.is_empty() {
        String::new()
    } else {
        format!("<p>{}</p>", esc(note))
    };
    format!(
        "<figure id=\"{id}\">\n<figcaption><h3>{}</h3>{note}</figcaption>\n{body}</figure>\n",
        esc(title)
    )
}

/// A line saying what is missing and why.
pub(crate) fn missing(text: &str) -> String {
    format!("<p class=\"missing\">{}</p>\n", esc(text))
}

/// A bulleted list of `items` under `heading`, or nothing when there are none.
pub(crate) fn notes(heading: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let lis: String = items
        .iter()
        .map(|i| format!("<li>{}</li>\n", esc(i)))
        .collect();
    format!(
        "<h3>{}</h3>\n<ul class=\"notes\">\n{lis}</ul>\n",
        esc(heading)
    )
}

/// One table cell.
pub(crate) enum Cell {
    /// Text, escaped.
    Text(String),
    /// A number, right-aligned.
    Num(String),
    /// A verdict word coloured by its class (`passed`, `failed`, `inconclusive`, `invalid`).
    Verdict(&'static str),
}

/// A table with a header row.
pub(crate) fn table(headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in headers {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&match cell {
                Cell::Text(t) => format!("<td>{}</td>", esc(t)),
                Cell::Num(t) => format!("<td class=\"num\">{}</td>", esc(t)),
                Cell::Verdict(v) => format!("<td class=\"{v}\">{v}</td>"),
            });
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A link when `url` is http(s), else the text (a `javascript:` or `data:` URL is never a link).
pub(crate) fn link(url: &str, text: &str) -> String {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        format!(
            "<a href=\"{}\" rel=\"noreferrer noopener\">{}</a>",
            esc(url),
            esc(text)
        )
    } else {
        esc(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<script>alert('x' & "y")</script>"#),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(4.2), "4.2");
        assert_eq!(num(0.525), "0.525");
        assert_eq!(num(1254.0), "1254");
        assert_eq!(num(0.012345), "0.01235");
        assert_eq!(num(123456.7), "123457");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.05), "-0.05");
        assert_eq!(num(2.5e-7), "2.500e-7");
        assert_eq!(opt_num(None), "missing");
    }

    #[test]
    fn the_policy_pins_the_stylesheet_and_allows_nothing_else() {
        let p = csp();
        assert!(p.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!p.contains("unsafe"));
        let html = page("t", "");
        assert!(html.contains(&format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{p}\">"
        )));
        // the hash is over the exact text between the tags
        assert!(html.contains(&format!("<style>{CSS}</style>")));
    }

    #[test]
    fn only_web_urls_become_links() {
        assert_eq!(
            link("https://mlflow/#/runs/1?a=1&b=2", "run"),
            "<a href=\"https://mlflow/#/runs/1?a=1&amp;b=2\" rel=\"noreferrer noopener\">run</a>"
        );
        assert_eq!(link("javascript:alert(1)", "run"), "run");
    }
}
