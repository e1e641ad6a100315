//! Presets on AWS: the same TOML file as `imgpipe serve --presets FILE`, read from S3.
//!
//! [`WatchedPresets`] loads the presets object and the logos it names at cold start (any problem
//! fails the function's init, naming the field and line, or the logo, and the S3 location), then
//! keeps them fresh: before an invocation, at most every `refresh` interval, it HEADs the
//! presets object and its logos, and reloads only when an ETag changed. A reload that fails is
//! logged as an error and the function keeps serving the last good presets; a reload that works
//! is swapped in whole ([`Live`]), so no request ever sees a half-loaded set.
//!
//! Logo paths in the file are resolved relative to the presets object's key, in its bucket, as
//! they are relative to the file locally: `image = "logos/mark.png"` in `config/presets.toml`
//! is `config/logos/mark.png`; a path starting with `/` starts at the bucket's root.

use super::s3::S3ObjectStore;
use super::vars;
use aws_config::SdkConfig;
use imgpipe_core::Live;
use imgpipe_core::ports::{ObjectStore, StoreError};
use imgpipe_core::preset::{Mark, PresetCatalog, PresetError};
use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How often a warm function checks the presets object when `PRESETS_REFRESH_SECONDS` is unset.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// The first bytes of every PNG file.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Any error of a caller's `build` step (the processor's: a logo that does not decode).
pub type BuildError = Box<dyn StdError + Send + Sync>;

/// Where a presets file is: an object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetsLocation {
    /// The bucket (the stack's config bucket, unless the key was an `s3://` URL).
    pub bucket: String,
    /// The presets object's key.
    pub key: String,
}

impl PresetsLocation {
    /// `presets_key` in `config_bucket`, or the bucket and key of an `s3://bucket/key` URL.
    pub fn parse(config_bucket: Option<&str>, presets_key: &str) -> Result<Self, PresetsError> {
        let bad = |reason: &str| PresetsError::Settings(format!("{}={presets_key:?}: {reason}", vars::PRESETS_KEY));
        let (bucket, key) = match presets_key.strip_prefix("s3://") {
            Some(url) => url.split_once('/').ok_or_else(|| bad("an s3:// location needs a bucket and a key"))?,
            None => match config_bucket {
                Some(bucket) => (bucket, presets_key),
                None => {
                    return Err(PresetsError::Settings(format!(
                        "{} is set but {} is not: the stack template sets both",
                        vars::PRESETS_KEY,
                        vars::CONFIG_BUCKET
                    )));
                }
            },
        };
        if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
            return Err(bad("names no object"));
        }
        Ok(Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    /// The key of the logo the file names `path`: relative to the file's own key, or to the
    /// bucket's root when it starts with `/`. `None` when `..` climbs above the root.
    pub fn logo_key(&self, path: &str) -> Option<String> {
        let mut segments: Vec<&str> = match path.strip_prefix('/') {
            Some(_) => Vec::new(),
            None => self.key.rsplit_once('/').map_or_else(Vec::new, |(dir, _)| dir.split('/').collect()),
        };
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop()?;
                }
                s => segments.push(s),
            }
        }
        (!segments.is_empty()).then(|| segments.join("/"))
    }
}

impl fmt::Display for PresetsLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Presets that could not be loaded. Each message names the S3 location, and the field and
/// line (a bad file) or the logo (a missing or unreadable one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresetsError {
    /// The environment names no usable location or interval.
    #[error("presets settings: {0}")]
    Settings(String),
    /// The presets object is not there (or this function may not read it: without
    /// `s3:ListBucket`, S3 answers a missing key with 403).
    #[error("presets {location}: no such object (or no s3:GetObject on it)")]
    Missing {
        /// Where it was looked for.
        location: PresetsLocation,
    },
    /// Reading the presets object or a logo failed (throttling, network, permissions).
    #[error("presets {location}: reading {key}: {source}")]
    Read {
        /// The presets file.
        location: PresetsLocation,
        /// The object that could not be read.
        key: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The file is not UTF-8.
    #[error("presets {location}: not UTF-8 text")]
    NotText {
        /// The presets file.
        location: PresetsLocation,
    },
    /// The file does not parse; the message is the one `imgpipe serve --presets` gives.
    #[error("presets {location}: {source}")]
    Invalid {
        /// The presets file.
        location: PresetsLocation,
        /// What is wrong, with the field and the line.
        #[source]
        source: PresetError,
    },
    /// A watermark logo is not there, or its path leaves the bucket.
    #[error("presets {location}: watermark logo {logo:?} not found (looked for {key:?})")]
    LogoMissing {
        /// The presets file.
        location: PresetsLocation,
        /// The logo's path as the file gives it.
        logo: String,
        /// The key it resolved to.
        key: String,
    },
    /// A watermark logo is not a PNG file.
    #[error("presets {location}: watermark logo {logo:?} ({key}) is not a PNG file")]
    LogoNotPng {
        /// The presets file.
        location: PresetsLocation,
        /// The logo's path as the file gives it.
        logo: String,
        /// Its key.
        key: String,
    },
    /// The caller could not prepare the built-in presets.
    #[error("the built-in presets: {source}")]
    Builtin {
        /// The caller's error.
        #[source]
        source: BuildError,
    },
    /// The caller could not prepare the presets (the processor: a logo that does not decode).
    #[error("presets {location}: {source}")]
    Build {
        /// The presets file.
        location: PresetsLocation,
        /// The caller's error.
        #[source]
        source: BuildError,
    },
}

/// A presets file and the logos it names, as loaded.
#[derive(Debug, Clone)]
pub struct LoadedPresets {
    /// The presets (the built-ins plus the file's).
    pub catalog: PresetCatalog,
    /// Logo bytes by the path the file gives.
    logos: BTreeMap<String, Vec<u8>>,
    /// The ETag of every object read (the file, then its logos): what a refresh compares.
    versions: Vec<(String, String)>,
}

impl LoadedPresets {
    /// The built-in presets (which name no logo).
    pub fn builtin() -> Self {
        Self { catalog: PresetCatalog::builtin(), logos: BTreeMap::new(), versions: Vec::new() }
    }

    /// The bytes of the logo the file names `path`: what `Recipes::new` reads logos with.
    pub fn logo(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.logos
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("logo {path:?} was not loaded")))
    }

    /// Reads the presets object at `location` from `store` (its bucket), then every logo it names.
    pub async fn read(store: &dyn ObjectStore, location: &PresetsLocation) -> Result<Self, PresetsError> {
        let (bytes, info) = match store.get(&location.key).await {
            Ok(found) => found,
            Err(StoreError::NotFound { .. }) => return Err(PresetsError::Missing { location: location.clone() }),
            Err(source) => {
                return Err(PresetsError::Read { location: location.clone(), key: location.key.clone(), source });
            }
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| PresetsError::NotText { location: location.clone() })?;
        let catalog = PresetCatalog::from_toml(text)
            .map_err(|source| PresetsError::Invalid { location: location.clone(), source })?;
        let mut versions = vec![(location.key.clone(), info.etag)];
        let mut logos = BTreeMap::new();
        for preset in catalog.iter() {
            let Some(Mark::Logo { path }) = preset.watermark.as_ref().map(|w| &w.mark) else { continue };
            if logos.contains_key(path) {
                continue;
            }
            let (logo, key) = (path.clone(), location.logo_key(path).unwrap_or_else(|| path.clone()));
            let missing =
                || PresetsError::LogoMissing { location: location.clone(), logo: logo.clone(), key: key.clone() };
            let (bytes, info) = match store.get(&key).await {
                Ok(found) => found,
                Err(StoreError::NotFound { .. } | StoreError::InvalidKey { .. }) => return Err(missing()),
                Err(source) => return Err(PresetsError::Read { location: location.clone(), key, source }),
            };
            if !bytes.starts_with(PNG_SIGNATURE) {
                return Err(PresetsError::LogoNotPng { location: location.clone(), logo, key });
            }
            versions.push((key, info.etag));
            logos.insert(logo, bytes.to_vec());
        }
        Ok(Self { catalog, logos, versions })
    }
}

/// What the functions read from their environment to find their presets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetsSettings {
    /// The presets file; `None` serves the built-in presets only.
    pub location: Option<PresetsLocation>,
    /// The shortest time between two checks of the file for changes.
    pub refresh: Duration,
}

impl PresetsSettings {
    /// From `PRESETS_KEY` (empty or unset: built-in presets), `CONFIG_BUCKET` and
    /// `PRESETS_REFRESH_SECONDS` (default [`DEFAULT_REFRESH`]).
    pub fn from_env() -> Result<Self, PresetsError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty());
        Self::parse(
            var(vars::CONFIG_BUCKET).as_deref(),
            var(vars::PRESETS_KEY).as_deref(),
            var(vars::PRESETS_REFRESH_SECONDS).as_deref(),
        )
    }

    /// The settings the three variables' values give.
    pub fn parse(
        config_bucket: Option<&str>,
        presets_key: Option<&str>,
        refresh_seconds: Option<&str>,
    ) -> Result<Self, PresetsError> {
        let location = presets_key.map(|key| PresetsLocation::parse(config_bucket, key.trim())).transpose()?;
        let refresh = match refresh_seconds {
            None => DEFAULT_REFRESH,
            Some(text) => Duration::from_secs(text.trim().parse().map_err(|_| {
                PresetsError::Settings(format!(
                    "{}={text:?}: expected a whole number of seconds",
                    vars::PRESETS_REFRESH_SECONDS
                ))
            })?),
        };
        Ok(Self { location, refresh })
    }
}

/// What one [`WatchedPresets::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Built-in presets: nothing to watch.
    Fixed,
    /// Checked less than the refresh interval ago (or another check is running).
    NotDue,
    /// The file and its logos are as loaded.
    Unchanged,
    /// Something changed and the new presets are now served.
    Reloaded,
    /// Something changed (or could not be checked) and the last good presets are still served.
    KeptLastGood,
}

/// How a caller turns loaded presets into what it serves (the ingest: the catalog; the
/// processor: recipes with decoded logos).
type Build<T> = Box<dyn Fn(&LoadedPresets) -> Result<T, BuildError> + Send + Sync>;

/// Presets served from a [`Live`] handle and, when they come from S3, kept in step with the
/// object (see the module's documentation).
pub struct WatchedPresets<T> {
    live: Live<T>,
    watch: Option<Watch<T>>,
}

struct Watch<T> {
    store: S3ObjectStore,
    location: PresetsLocation,
    refresh: Duration,
    build: Build<T>,
    state: Mutex<WatchState>,
}

struct WatchState {
    checked: Instant,
    /// The object versions the served presets were loaded from.
    versions: Vec<(String, String)>,
}

impl<T> WatchedPresets<T> {
    /// The presets the environment names ([`PresetsSettings::from_env`]), through `build`.
    pub async fn from_env<E>(
        config: &SdkConfig,
        build: impl Fn(&LoadedPresets) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, PresetsError>
    where
        E: Into<BuildError>,
    {
        let settings = PresetsSettings::from_env()?;
        match settings.location {
            None => Self::builtin(build),
            Some(location) => {
                let store = S3ObjectStore::new(config, location.bucket.clone());
                Self::open(store, &location.key, settings.refresh, build).await
            }
        }
    }

    /// The built-in presets; [`WatchedPresets::refresh`] does nothing.
    pub fn builtin<E: Into<BuildError>>(build: impl Fn(&LoadedPresets) -> Result<T, E>) -> Result<Self, PresetsError> {
        let value = build(&LoadedPresets::builtin()).map_err(|e| PresetsError::Builtin { source: e.into() })?;
        Ok(Self { live: Live::new(value), watch: None })
    }

    /// Loads the presets object `key` of `store`'s bucket and its logos, through `build`; later
    /// [`WatchedPresets::refresh`] calls check it every `refresh` at most.
    pub async fn open<E>(
        store: S3ObjectStore,
        key: &str,
        refresh: Duration,
        build: impl Fn(&LoadedPresets) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, PresetsError>
    where
        E: Into<BuildError>,
    {
        let location = PresetsLocation { bucket: store.bucket().to_owned(), key: key.to_owned() };
        let build: Build<T> = Box::new(move |loaded| build(loaded).map_err(Into::into));
        let loaded = LoadedPresets::read(&store, &location).await?;
        let value = build(&loaded).map_err(|source| PresetsError::Build { location: location.clone(), source })?;
        tracing::info!(location = %location, versions = ?loaded.versions, "presets loaded");
        let state = Mutex::new(WatchState { checked: Instant::now(), versions: loaded.versions });
        Ok(Self { live: Live::new(value), watch: Some(Watch { store, location, refresh, build, state }) })
    }

    /// The handle the served presets are read through (it follows every reload).
    pub fn live(&self) -> Live<T> {
        self.live.clone()
    }

    /// Reloads the presets if the refresh interval has passed and the object or a logo changed.
    /// Call it before handling an invocation: a warm function then serves a change within the
    /// interval. Never fails: a change that does not load leaves the last good presets served.
    pub async fn refresh(&self) -> Refresh {
        let Some(watch) = &self.watch else { return Refresh::Fixed };
        // One check at a time; a caller arriving during one serves what is there.
        let Ok(mut state) = watch.state.try_lock() else { return Refresh::NotDue };
        if state.checked.elapsed() < watch.refresh {
            return Refresh::NotDue;
        }
        state.checked = Instant::now();
        match watch.changed(&state.versions).await {
            Ok(false) => return Refresh::Unchanged,
            Ok(true) => {}
            Err(error) => {
                tracing::warn!(location = %watch.location, error = %error, "cannot check the presets for changes; serving the ones loaded");
                return Refresh::KeptLastGood;
            }
        }
        let loaded = match LoadedPresets::read(&watch.store, &watch.location).await {
            Ok(loaded) => loaded,
            Err(error) => return watch.kept(&error),
        };
        match (watch.build)(&loaded) {
            Ok(value) => {
                self.live.replace(value);
                tracing::info!(location = %watch.location, versions = ?loaded.versions, "presets changed: reloaded");
                state.versions = loaded.versions;
                Refresh::Reloaded
            }
            Err(source) => watch.kept(&PresetsError::Build { location: watch.location.clone(), source }),
        }
    }
}

impl<T> Watch<T> {
    /// Whether any object the presets were loaded from has another ETag now (or is gone): one
    /// HEAD each, the file first.
    async fn changed(&self, versions: &[(String, String)]) -> Result<bool, StoreError> {
        for (key, etag) in versions {
            match self.store.head(key).await {
                Ok(info) if &info.etag == etag => {}
                Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Logs a change that did not load. The versions are left as they were, so the next check
    /// tries again (a logo uploaded after the file that names it is then picked up).
    fn kept(&self, error: &PresetsError) -> Refresh {
        tracing::error!(location = %self.location, error = %error, "the presets changed but do not load; still serving the last good presets");
        Refresh::KeptLastGood
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str) -> PresetsLocation {
        PresetsLocation { bucket: "b".into(), key: key.into() }
    }

    #[test]
    fn logos_resolve_relative_to_the_presets_key() {
        assert_eq!(at("presets.toml").logo_key("logo.png").as_deref(), Some("logo.png"));
        assert_eq!(at("config/site/presets.toml").logo_key("logos/a.png").as_deref(), Some("config/site/logos/a.png"));
        assert_eq!(at("config/site/presets.toml").logo_key("../a.png").as_deref(), Some("config/a.png"));
        assert_eq!(at("config/site/presets.toml").logo_key("./x/./a.png").as_deref(), Some("config/site/x/a.png"));
        assert_eq!(at("config/site/presets.toml").logo_key("/brand/a.png").as_deref(), Some("brand/a.png"));
        assert_eq!(at("config/presets.toml").logo_key("../../a.png"), None);
    }

    #[test]
    fn settings_name_a_key_in_the_config_bucket_or_an_s3_url() {
        let builtin = PresetsSettings::parse(Some("cfg"), None, None).unwrap();
        assert_eq!(builtin, PresetsSettings { location: None, refresh: DEFAULT_REFRESH });
        let key = PresetsSettings::parse(Some("cfg"), Some("p/presets.toml"), Some("5")).unwrap();
        assert_eq!(key.location, Some(PresetsLocation { bucket: "cfg".into(), key: "p/presets.toml".into() }));
        assert_eq!(key.refresh, Duration::from_secs(5));
        let url = PresetsSettings::parse(None, Some("s3://other/a/b.toml"), None).unwrap();
        assert_eq!(url.location.unwrap().to_string(), "s3://other/a/b.toml");
        for (bucket, key, refresh, named) in [
            (None, Some("p.toml"), None, "CONFIG_BUCKET"),
            (Some("cfg"), Some("s3://only-a-bucket"), None, "PRESETS_KEY"),
            (Some("cfg"), Some("dir/"), None, "PRESETS_KEY"),
            (Some("cfg"), Some("p.toml"), Some("soon"), "PRESETS_REFRESH_SECONDS"),
        ] {
            let err = PresetsSettings::parse(bucket, key, refresh).unwrap_err().to_string();
            assert!(err.contains(named), "{key:?} {refresh:?}: {err}");
        }
    }
}
