//! The portal's texts: Fluent catalogues (`locales/*.ftl`, compiled in),
//! one per language, and the choice of language: the user's locale, or
//! with "Auto-detect" the browser's `Accept-Language`, else English.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use unic_langid::LanguageIdentifier;

/// The languages the portal speaks, English first (the fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    /// The tag kept as a user's locale and sent in `lang=`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The language of a tag (`de`, `de-AT`, `EN_us`), if we speak it.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let id: LanguageIdentifier = tag.trim().replace('_', "-").parse().ok()?;
        Lang::ALL
            .into_iter()
            .find(|l| id.language.as_str() == l.tag())
    }

    /// The user's `locale` when set, else the best of `Accept-Language`.
    pub fn choose(locale: Option<&str>, accept_language: Option<&str>) -> Lang {
        locale
            .and_then(Lang::from_tag)
            .or_else(|| accept_language.and_then(from_accept_language))
            .unwrap_or(Lang::En)
    }

    /// The text of message `id`; the id itself if a catalogue lacks it
    /// (a test checks that none does).
    pub fn t(self, id: &str) -> String {
        self.format(id, None)
    }

    /// [`Lang::t`] with arguments.
    pub fn t_with(self, id: &str, args: &[(&str, &str)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (k, v) in args {
            fluent_args.set(*k, v.to_string());
        }
        self.format(id, Some(&fluent_args))
    }

    fn format(self, id: &str, args: Option<&FluentArgs>) -> String {
        let bundle = bundle(self);
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            return id.to_string();
        };
        let mut errors = Vec::new();
        bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned()
    }
}

/// The first language of an `Accept-Language` header (RFC 9110 §12.5.4),
/// by weight, that we speak.
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut ranges: Vec<(f32, usize, Lang)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, item)| {
            let mut parts = item.split(';');
            let lang = Lang::from_tag(parts.next()?)?;
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (q > 0.0).then_some((q, i, lang))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.first().map(|r| r.2)
}

type Bundle = FluentBundle<FluentResource>;

fn bundle(lang: Lang) -> &'static Bundle {
    static EN: OnceLock<Bundle> = OnceLock::new();
    static DE: OnceLock<Bundle> = OnceLock::new();
    match lang {
        Lang::En => EN.get_or_init(|| load(lang, include_str!("locales/en.ftl"))),
        Lang::De => DE.get_or_init(|| load(lang, include_str!("locales/de.ftl"))),
    }
}

fn load(lang: Lang, source: &str) -> Bundle {
    let id: LanguageIdentifier = lang.tag().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Plain text in HTML: no Unicode isolation marks around arguments.
    bundle.set_use_isolating(false);
    let resource =
        FluentResource::try_new(source.to_string()).unwrap_or_else(|(partial, errors)| {
            tracing::error!(lang = lang.tag(), ?errors, "portal catalogue has errors");
            partial
        });
    if let Err(errors) = bundle.add_resource(resource) {
        tracing::error!(
            lang = lang.tag(),
            ?errors,
            "portal catalogue has duplicate messages"
        );
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(source: &str) -> Vec<&str> {
        source
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .collect()
    }

    #[test]
    fn catalogues_are_complete_and_parse() {
        let en = ids(include_str!("locales/en.ftl"));
        let de = ids(include_str!("locales/de.ftl"));
        assert_eq!(en, de, "the same messages in the same order");
        for lang in Lang::ALL {
            for id in &en {
                assert_ne!(lang.t(id), *id, "{id} in {lang:?}");
            }
        }
        assert_eq!(Lang::En.t("sign-in"), "Sign in");
        assert_eq!(Lang::De.t("sign-in"), "Anmelden");
        assert_eq!(
            Lang::En.t_with("signed-in-as", &[("name", "Alice")]),
            "Signed in as Alice"
        );
    }

    #[test]
    fn language_from_locale_then_accept_language() {
        assert_eq!(Lang::choose(None, None), Lang::En);
        assert_eq!(Lang::choose(None, Some("en-US")), Lang::En);
        assert_eq!(
            Lang::choose(None, Some("de-AT,de;q=0.9,en;q=0.8")),
            Lang::De
        );
        assert_eq!(Lang::choose(None, Some("fr, en;q=0.5, de;q=0.7")), Lang::De);
        assert_eq!(Lang::choose(None, Some("de;q=0, en;q=0.1")), Lang::En);
        assert_eq!(Lang::choose(None, Some("fr")), Lang::En);
        assert_eq!(Lang::choose(Some("de"), Some("en-US")), Lang::De);
        assert_eq!(Lang::choose(Some("xx"), Some("de")), Lang::De);
    }
}
