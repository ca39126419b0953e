//! Set matchers shared by all rules: one `GlobSet`, one `RegexSet`, one Aho-Corasick automaton
//! per kind of fact, so matching an event costs one pass per fact however many rules there are.
//!
//! Each matcher field of each rule becomes an *atom*; matching an event yields the set of atoms
//! that fired, and the rules' boolean expressions are evaluated over that set.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::bytes::{RegexBuilder, RegexSet, RegexSetBuilder};

use super::facts::Facts;

pub type AtomId = u32;

/// Fired atoms of one evaluation, as a bit set.
pub struct Fired(Vec<u64>);

impl Fired {
    pub fn new(atoms: usize) -> Fired {
        Fired(vec![0; atoms.div_ceil(64)])
    }

    fn set(&mut self, atom: AtomId) {
        self.0[(atom / 64) as usize] |= 1 << (atom % 64);
    }

    pub fn get(&self, atom: AtomId) -> bool {
        self.0[(atom / 64) as usize] & (1 << (atom % 64)) != 0
    }

    pub fn iter(&self) -> impl Iterator<Item = AtomId> + '_ {
        self.0.iter().enumerate().flat_map(|(word_index, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                Some(word_index as u32 * 64 + bit)
            })
        })
    }
}

/// A glob set plus, for each glob, the atom it belongs to.
struct GlobAtoms {
    builder: GlobSetBuilder,
    atoms: Vec<AtomId>,
    set: Option<GlobSet>,
}

impl Default for GlobAtoms {
    fn default() -> Self {
        GlobAtoms {
            builder: GlobSetBuilder::new(),
            atoms: Vec::new(),
            set: None,
        }
    }
}

impl GlobAtoms {
    fn add(&mut self, pattern: &str, atom: AtomId, case_insensitive: bool) -> Result<(), String> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .case_insensitive(case_insensitive)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))?;
        self.builder.add(glob);
        self.atoms.push(atom);
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        self.set = Some(self.builder.build().map_err(|e| e.to_string())?);
        Ok(())
    }

    fn fire(&self, text: &str, scratch: &mut Vec<usize>, fired: &mut Fired) {
        let Some(set) = &self.set else { return };
        if set.is_empty() {
            return;
        }
        set.matches_candidate_into(&Candidate::new(text), scratch);
        for &index in scratch.iter() {
            fired.set(self.atoms[index]);
        }
    }
}

#[derive(Default)]
pub struct MatchersBuilder {
    atom_count: u32,
    paths: GlobAtoms,
    tools: GlobAtoms,
    mcp_servers: GlobAtoms,
    mcp_tools: GlobAtoms,
    host_globs: GlobAtoms,
    host_exact: HashMap<String, Vec<AtomId>>,
    platforms: HashMap<String, Vec<AtomId>>,
    pin_states: HashMap<String, Vec<AtomId>>,
    regexes: Vec<String>,
    regex_atoms: Vec<AtomId>,
    sql_regexes: Vec<String>,
    sql_atoms: Vec<AtomId>,
    words: Vec<String>,
    word_atoms: Vec<AtomId>,
}

/// The kind of fact an atom tests; also how selective it is for picking rule triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AtomKind {
    // Most selective first.
    Command,
    Path,
    Host,
    Mcp,
    Tool,
    Platform,
}

impl MatchersBuilder {
    fn next_atom(&mut self) -> AtomId {
        self.atom_count += 1;
        self.atom_count - 1
    }

    pub fn atom_count(&self) -> usize {
        self.atom_count as usize
    }

    pub fn add(&mut self, kind: AtomField, patterns: &[String]) -> Result<AtomId, String> {
        let atom = self.next_atom();
        for pattern in patterns {
            if pattern.is_empty() {
                return Err(format!("empty pattern in `{}`", kind.name()));
            }
            match kind {
                AtomField::Path => self.paths.add(pattern, atom, false)?,
                AtomField::Tool => self.tools.add(pattern, atom, true)?,
                AtomField::McpServer => self.mcp_servers.add(pattern, atom, true)?,
                AtomField::McpTool => self.mcp_tools.add(pattern, atom, true)?,
                AtomField::Platform => self
                    .platforms
                    .entry(pattern.to_ascii_lowercase())
                    .or_default()
                    .push(atom),
                AtomField::Host => {
                    let host = pattern.trim_end_matches('.').to_ascii_lowercase();
                    if host.contains(['*', '?', '[', '{']) {
                        self.host_globs.add(&host, atom, true)?;
                    } else {
                        self.host_exact.entry(host).or_default().push(atom);
                    }
                }
                AtomField::Command => {
                    command_regex(pattern)
                        .map_err(|e| format!("invalid command regex `{pattern}`: {e}"))?;
                    self.regexes.push(pattern.clone());
                    self.regex_atoms.push(atom);
                }
                AtomField::Sql => {
                    command_regex(pattern)
                        .map_err(|e| format!("invalid sql regex `{pattern}`: {e}"))?;
                    self.sql_regexes.push(pattern.clone());
                    self.sql_atoms.push(atom);
                }
                AtomField::McpToolPin => {
                    if !PIN_STATES.contains(&pattern.as_str()) {
                        return Err(format!(
                            "unknown mcp_tool_pin `{pattern}`: expected one of {}",
                            PIN_STATES.join(", ")
                        ));
                    }
                    self.pin_states
                        .entry(pattern.clone())
                        .or_default()
                        .push(atom);
                }
                AtomField::CommandWords => {
                    self.words.push(pattern.to_ascii_lowercase());
                    self.word_atoms.push(atom);
                }
            }
        }
        Ok(atom)
    }

    pub fn build(mut self) -> Result<Matchers, String> {
        for globs in [
            &mut self.paths,
            &mut self.tools,
            &mut self.mcp_servers,
            &mut self.mcp_tools,
            &mut self.host_globs,
        ] {
            globs.build()?;
        }
        let regex_set = |patterns: &[String], field: &str| {
            RegexSetBuilder::new(patterns)
                .unicode(false)
                .size_limit(256 << 20)
                .dfa_size_limit(64 << 20)
                .build()
                .map_err(|e| format!("{field} regexes do not compile together: {e}"))
        };
        let regexes = regex_set(&self.regexes, "command")?;
        let sql_regexes = regex_set(&self.sql_regexes, "sql")?;
        let words = if self.words.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&self.words)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Matchers {
            atom_count: self.atom_count as usize,
            paths: self.paths,
            tools: self.tools,
            mcp_servers: self.mcp_servers,
            mcp_tools: self.mcp_tools,
            host_globs: self.host_globs,
            host_exact: self.host_exact,
            platforms: self.platforms,
            pin_states: self.pin_states,
            regexes,
            regex_atoms: self.regex_atoms,
            sql_regexes,
            sql_atoms: self.sql_atoms,
            words,
            word_atoms: self.word_atoms,
        })
    }
}

/// Which field of a condition an atom comes from.
#[derive(Debug, Clone, Copy)]
pub enum AtomField {
    Path,
    Tool,
    Platform,
    Command,
    CommandWords,
    Host,
    McpServer,
    McpTool,
    McpToolPin,
    Sql,
}

/// The states `mcp_tool_pin` can name (set by `quintctl mcp wrap`).
pub const PIN_STATES: &[&str] = &["pinned", "changed", "new", "unlisted"];

impl AtomField {
    pub fn name(self) -> &'static str {
        match self {
            AtomField::Path => "path",
            AtomField::Tool => "tool",
            AtomField::Platform => "platform",
            AtomField::Command => "command",
            AtomField::CommandWords => "command_words",
            AtomField::Host => "host",
            AtomField::McpServer => "mcp_server",
            AtomField::McpTool => "mcp_tool",
            AtomField::McpToolPin => "mcp_tool_pin",
            AtomField::Sql => "sql",
        }
    }

    pub fn kind(self) -> AtomKind {
        match self {
            AtomField::Command | AtomField::CommandWords | AtomField::Sql => AtomKind::Command,
            AtomField::Path => AtomKind::Path,
            AtomField::Host => AtomKind::Host,
            AtomField::McpServer | AtomField::McpTool | AtomField::McpToolPin => AtomKind::Mcp,
            AtomField::Tool => AtomKind::Tool,
            AtomField::Platform => AtomKind::Platform,
        }
    }
}

pub struct Matchers {
    atom_count: usize,
    paths: GlobAtoms,
    tools: GlobAtoms,
    mcp_servers: GlobAtoms,
    mcp_tools: GlobAtoms,
    host_globs: GlobAtoms,
    host_exact: HashMap<String, Vec<AtomId>>,
    platforms: HashMap<String, Vec<AtomId>>,
    pin_states: HashMap<String, Vec<AtomId>>,
    regexes: RegexSet,
    regex_atoms: Vec<AtomId>,
    sql_regexes: RegexSet,
    sql_atoms: Vec<AtomId>,
    words: Option<AhoCorasick>,
    word_atoms: Vec<AtomId>,
}

impl Matchers {
    pub fn atom_count(&self) -> usize {
        self.atom_count
    }

    /// Every atom that holds for these facts.
    pub fn fire(&self, facts: &Facts) -> Fired {
        let mut fired = Fired::new(self.atom_count);
        let mut scratch = Vec::new();
        for path in &facts.paths {
            self.paths.fire(path, &mut scratch, &mut fired);
        }
        if let Some(tool) = &facts.tool {
            self.tools.fire(tool, &mut scratch, &mut fired);
        }
        if let Some(server) = &facts.mcp_server {
            self.mcp_servers.fire(server, &mut scratch, &mut fired);
        }
        if let Some(tool) = &facts.mcp_tool {
            self.mcp_tools.fire(tool, &mut scratch, &mut fired);
        }
        if let Some(atoms) = self.platforms.get(&facts.platform.to_ascii_lowercase()) {
            atoms.iter().for_each(|&atom| fired.set(atom));
        }
        if let Some(atoms) = facts
            .mcp_tool_pin
            .as_ref()
            .and_then(|state| self.pin_states.get(state))
        {
            atoms.iter().for_each(|&atom| fired.set(atom));
        }
        if !self.sql_regexes.is_empty() {
            for sql in &facts.sql {
                for index in self.sql_regexes.matches(sql.as_bytes()).iter() {
                    fired.set(self.sql_atoms[index]);
                }
            }
        }
        for host in &facts.hosts {
            // `example.com` in a rule covers `a.b.example.com`: look up every parent domain.
            let mut suffix = host.as_str();
            loop {
                if let Some(atoms) = self.host_exact.get(suffix) {
                    atoms.iter().for_each(|&atom| fired.set(atom));
                }
                match suffix.split_once('.') {
                    Some((_, parent)) if !parent.is_empty() => suffix = parent,
                    _ => break,
                }
            }
            self.host_globs.fire(host, &mut scratch, &mut fired);
        }
        for command in &facts.commands {
            if !self.regexes.is_empty() {
                for index in self.regexes.matches(command.as_bytes()).iter() {
                    fired.set(self.regex_atoms[index]);
                }
            }
            if let Some(words) = &self.words {
                let bytes = command.as_bytes();
                for found in words.find_overlapping_iter(command) {
                    let before = found.start().checked_sub(1).map(|i| bytes[i]);
                    let after = bytes.get(found.end()).copied();
                    if !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte) {
                        fired.set(self.word_atoms[found.pattern().as_usize()]);
                    }
                }
            }
        }
        fired
    }
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Command and SQL patterns match bytes with ASCII classes (`\w`, `\d`, `\s`, `\b` and `(?i)`
/// are ASCII; `(?u:…)` turns Unicode on inside a pattern). Shells split words on ASCII
/// whitespace and commands are named in ASCII, and the Unicode tables made the compiled set
/// several times larger (8.4 MB against 1.5 MB for the default pack).
fn command_regex(pattern: &str) -> Result<regex::bytes::Regex, regex::Error> {
    RegexBuilder::new(pattern).unicode(false).build()
}
