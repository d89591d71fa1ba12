//! Hadoop-style path globs: `*` and `?` (never crossing `/`), `[abc]`, `[a-z]`, `[!a]` / `[^a]`,
//! `{a,b}` alternatives (nestable) and `\` escapes.
//!
//! A pattern is matched one path component at a time, so listing only has to walk the
//! directories the pattern can reach.

/// Error in a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    pub pattern: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// One compiled path component, e.g. `part-*.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPattern {
    tokens: Vec<Token>,
}

impl ComponentPattern {
    /// True when the component has no wildcard (it is a plain name).
    pub fn literal(&self) -> Option<String> {
        self.tokens
            .iter()
            .map(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether `name` (one path component) matches.
    pub fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        match_tokens(&self.tokens, &chars)
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    // Iterative matcher with single-star backtracking (linear in practice).
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(tok) if token_matches(tok, name[n]) => {
                t += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, sn)) => {
                t = st + 1;
                n = sn + 1;
                star = Some((st, sn + 1));
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Star)
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyChar => true,
        Token::Star => false,
        Token::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
    }
}

/// A compiled glob: every brace alternative split into path components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// One entry per brace alternative; each is a list of components of an absolute path.
    pub alternatives: Vec<Vec<ComponentPattern>>,
}

impl Glob {
    /// Compiles an absolute path pattern such as `/data/users/2026-11-2[45]/*.jsonl.gz`.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let err = |reason| GlobError { pattern: pattern.to_owned(), reason };
        if !pattern.starts_with('/') {
            return Err(err("the path must be absolute"));
        }
        let alternatives = expand_braces(pattern).map_err(err)?;
        let mut compiled = Vec::with_capacity(alternatives.len());
        for alt in alternatives {
            let components = split_components(&alt)
                .into_iter()
                .map(|c| compile_component(c).map_err(err))
                .collect::<Result<Vec<_>, _>>()?;
            compiled.push(components);
        }
        Ok(Glob { alternatives: compiled })
    }

    /// True when no component of any alternative has a wildcard and there is one alternative.
    pub fn is_literal(&self) -> bool {
        self.alternatives.len() == 1 && self.alternatives[0].iter().all(|c| c.literal().is_some())
    }

    /// Whether an absolute path matches the whole pattern.
    pub fn matches_path(&self, path: &str) -> bool {
        let parts = split_components(path);
        self.alternatives
            .iter()
            .any(|alt| alt.len() == parts.len() && alt.iter().zip(&parts).all(|(p, name)| p.matches(name)))
    }
}

/// Returns true when the text contains a glob metacharacter.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{', '\\'])
}

fn split_components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn compile_component(text: &str) -> Result<ComponentPattern, &'static str> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Token::Literal(chars.next().ok_or("dangling escape")?)),
            '*' => {
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
            }
            '?' => tokens.push(Token::AnyChar),
            '[' => {
                let negated = matches!(chars.peek(), Some('!' | '^'));
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    let lo = match c {
                        ']' if !ranges.is_empty() => {
                            closed = true;
                            break;
                        }
                        '\\' => chars.next().ok_or("dangling escape")?,
                        c => c,
                    };
                    let hi = if chars.peek() == Some(&'-') {
                        chars.next();
                        match chars.next() {
                            Some(']') | None => return Err("unterminated range in class"),
                            Some('\\') => chars.next().ok_or("dangling escape")?,
                            Some(h) => h,
                        }
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err("reversed range in class");
                    }
                    ranges.push((lo, hi));
                }
                if !closed {
                    return Err("unterminated character class");
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(ComponentPattern { tokens })
}

/// Expands `{a,b}` alternatives (nested too) into plain patterns.
fn expand_braces(pattern: &str) -> Result<Vec<String>, &'static str> {
    let bytes: Vec<char> = pattern.chars().collect();
    // Find the first top-level `{` and its matching `}`.
    let mut i = 0;
    let mut open = None;
    while i < bytes.len() {
        match bytes[i] {
            '\\' => i += 1,
            '{' => {
                open = Some(i);
                break;
            }
            '}' => return Err("unmatched '}'"),
            _ => {}
        }
        i += 1;
    }
    let Some(open) = open else {
        return Ok(vec![pattern.to_owned()]);
    };
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut part_start = open + 1;
    let mut close = None;
    let mut j = open;
    while j < bytes.len() {
        match bytes[j] {
            '\\' => j += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(&bytes[part_start..j]);
                    close = Some(j);
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push(&bytes[part_start..j]);
                part_start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    let close = close.ok_or("unmatched '{'")?;
    let prefix: String = bytes[..open].iter().collect();
    let suffix: String = bytes[close + 1..].iter().collect();
    let mut out = Vec::new();
    for part in parts {
        let middle: String = part.iter().collect();
        out.extend(expand_braces(&format!("{prefix}{middle}{suffix}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_paths_component_by_component() {
        let cases: &[(&str, &str, bool)] = &[
            ("/data/*.jsonl.gz", "/data/a.jsonl.gz", true),
            ("/data/*.jsonl.gz", "/data/sub/a.jsonl.gz", false),
            ("/data/*/*.csv", "/data/x/y.csv", true),
            ("/data/part-?.csv", "/data/part-1.csv", true),
            ("/data/part-?.csv", "/data/part-10.csv", false),
            ("/data/2026-11-2[45]/*", "/data/2026-11-24/f", true),
            ("/data/2026-11-2[45]/*", "/data/2026-11-26/f", false),
            ("/data/2026-11-2[!45]/*", "/data/2026-11-26/f", true),
            ("/data/[a-c]x", "/data/bx", true),
            ("/data/[a-c]x", "/data/dx", false),
            ("/data/{users,orders}/*.avro", "/data/orders/o.avro", true),
            ("/data/{users,orders}/*.avro", "/data/items/o.avro", false),
            ("/data/{a,b{1,2}}/f", "/data/b2/f", true),
            ("/data/{a,b/c}/f", "/data/b/c/f", true),
            ("/data/\\*", "/data/*", true),
            ("/data/\\*", "/data/x", false),
            ("/data/*a*b", "/data/xaab", true),
            ("/data/*a*b", "/data/xaaba", false),
            ("/data/*", "/data/", false),
            ("/data/exact.csv", "/data/exact.csv", true),
            ("/data//x/", "/data/x", true),
        ];
        for (pattern, path, want) in cases {
            let glob = Glob::new(pattern).expect("valid pattern");
            assert_eq!(glob.matches_path(path), *want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn broken_globs_are_rejected_with_a_reason() {
        for bad in ["/data/[abc", "/data/{a,b", "/data/a}", "relative/*", "/x/[z-a]", "/x\\"] {
            assert!(Glob::new(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn literal_patterns_are_recognised() {
        assert!(Glob::new("/data/a.csv").expect("valid").is_literal());
        assert!(!Glob::new("/data/*.csv").expect("valid").is_literal());
        assert!(!Glob::new("/data/{a,b}.csv").expect("valid").is_literal());
        assert!(has_wildcard("/d/{a,b}"));
        assert!(!has_wildcard("/d/a"));
    }
}
