//! Named domain sets: the hosts a package tool needs, which a profile in network mode
//! "proxy" includes by name (`[network] include = ["npm", "pypi"]`) instead of listing them.
//! Data and lookups only: no I/O.
//!
//! A set holds what its tool contacts to fetch and install, nothing more, each host exact
//! (no wildcard) and on port 443 only: every host here is a way out for data. What the tool
//! reaches on a host of its own but a build does not need (crates.io's web API for search
//! and publishing, PyPI's upload host, web pages) is left out; a profile that wants it says
//! so in `allow`.
//! `cordon profile sets` prints these sets; docs/profiles.md says the same in prose.

use super::rules::Rule;

/// One host of a set, and why its tool needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetHost {
    /// The host name, reached on port 443 only.
    pub name: &'static str,
    /// Why it is in the set, in one line.
    pub why: &'static str,
}

/// A named set of hosts a profile can include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainSet {
    /// The name a profile writes in `[network] include`.
    pub name: &'static str,
    /// What the set is for, in one line.
    pub purpose: &'static str,
    /// Its hosts.
    pub hosts: &'static [SetHost],
}

impl DomainSet {
    /// The set's hosts as allow rules (port 443), each remembering this set.
    pub fn rules(&self) -> Vec<Rule> {
        self.hosts
            .iter()
            // Every host parses: a test below holds the data to it.
            .filter_map(|h| Rule::parse(h.name).ok())
            .map(|r| r.in_set(self.name))
            .collect()
    }
}

/// Every set cordon knows, in the order `cordon profile sets` shows them.
pub const SETS: &[DomainSet] = &[
    DomainSet {
        name: "npm",
        purpose: "the npm registry: npm install, npx, and yarn, pnpm or bun installing from it",
        hosts: &[
            SetHost {
                name: "registry.npmjs.org",
                why: "package metadata and tarballs for npm, npx, pnpm and bun; npm audit",
            },
            SetHost {
                name: "registry.yarnpkg.com",
                why: "the same registry under the name yarn uses by default",
            },
        ],
    },
    DomainSet {
        name: "pypi",
        purpose: "the Python Package Index: pip install (and uv, poetry, pipx)",
        hosts: &[
            SetHost {
                name: "pypi.org",
                why: "the index pip reads (/simple/) and its version check",
            },
            SetHost {
                name: "files.pythonhosted.org",
                why: "the packages themselves: wheels and source archives",
            },
        ],
    },
    DomainSet {
        name: "crates",
        purpose: "crates.io for cargo: build, fetch, update, add and install",
        hosts: &[
            SetHost {
                name: "index.crates.io",
                why: "cargo's sparse index of crates.io (the default since Rust 1.70)",
            },
            SetHost {
                name: "static.crates.io",
                why: "the .crate files, where the index's config.json sends downloads",
            },
        ],
    },
    DomainSet {
        name: "github",
        purpose: "GitHub: git over HTTPS, archives, raw files and release downloads",
        hosts: &[
            SetHost {
                name: "github.com",
                why: "git clone, fetch and push over HTTPS; release and archive links start here",
            },
            SetHost {
                name: "api.github.com",
                why: "the REST API: gh, and cargo's quick check of a git dependency's branch",
            },
            SetHost {
                name: "codeload.github.com",
                why: "archives of a commit or tag: npm's github: dependencies, archive URLs",
            },
            SetHost {
                name: "raw.githubusercontent.com",
                why: "single files at a commit (install scripts, raw configuration)",
            },
            SetHost {
                name: "objects.githubusercontent.com",
                why: "release downloads, where older release links redirect",
            },
            SetHost {
                name: "release-assets.githubusercontent.com",
                why: "release downloads, where github.com redirects since 2025",
            },
        ],
    },
];

/// The set named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static DomainSet> {
    SETS.iter().find(|s| s.name == name)
}

/// The names of every set, for an error that lists them: "npm, pypi, crates, github".
pub fn names() -> String {
    SETS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::rules::List;

    #[test]
    fn every_host_of_every_set_is_an_exact_name_on_port_443_that_remembers_its_set() {
        for set in SETS {
            let rules = set.rules();
            assert_eq!(rules.len(), set.hosts.len(), "set {}", set.name);
            for (rule, host) in rules.iter().zip(set.hosts) {
                assert_eq!(rule.to_string(), host.name, "written as it is normalized");
                assert!(!host.name.contains('*'), "{} is exact", host.name);
                assert_eq!(rule.ports(List::Allow), "port 443");
                assert_eq!(rule.set(), Some(set.name));
                assert!(!host.why.is_empty(), "{} says why", host.name);
            }
        }
    }

    #[test]
    fn set_names_and_hosts_are_not_repeated() {
        let mut names: Vec<&str> = SETS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETS.len());
        let mut hosts: Vec<&str> = SETS.iter().flat_map(|s| s.hosts).map(|h| h.name).collect();
        let all = hosts.len();
        hosts.sort_unstable();
        hosts.dedup();
        assert_eq!(hosts.len(), all, "a host belongs to one set");
    }

    #[test]
    fn the_sets_hold_the_registries_their_tools_fetch_from() {
        let hosts = |name: &str| -> Vec<&str> {
            find(name)
                .map(|s| s.hosts.iter().map(|h| h.name).collect())
                .unwrap_or_default()
        };
        assert_eq!(hosts("npm"), ["registry.npmjs.org", "registry.yarnpkg.com"]);
        assert_eq!(hosts("pypi"), ["pypi.org", "files.pythonhosted.org"]);
        assert_eq!(hosts("crates"), ["index.crates.io", "static.crates.io"]);
        assert!(hosts("github").contains(&"github.com"));
        assert!(find("maven").is_none());
        assert_eq!(names(), "npm, pypi, crates, github");
    }
}
