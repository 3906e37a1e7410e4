//! Every text of the web UI, in German (the default) and English. Texts are enum
//! variants, so a missing translation or a typo in a key does not compile.
//!
//! The language comes from the `flotte_lang` cookie (set by the switch in the page
//! header), else from the browser's `Accept-Language`, else German.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, Utc};
use flotte_core::loans::{BorrowerAlert, Condition, LoanRuleError};
use std::convert::Infallible;

/// The language cookie.
pub(crate) const LANG_COOKIE: &str = "flotte_lang";

/// A language of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    De,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language, for the switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::De => Lang::En,
            Lang::En => Lang::De,
        }
    }

    /// The first of German or English the browser asks for; German when neither.
    fn from_accept_language(header: &str) -> Lang {
        for part in header.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("de") {
                return Lang::De;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::De
    }

    pub fn t(self, m: Msg) -> &'static str {
        m.text(self)
    }

    pub fn date(self, d: NaiveDate) -> String {
        match self {
            Lang::De => d.format("%d.%m.%Y").to_string(),
            Lang::En => d.format("%Y-%m-%d").to_string(),
        }
    }

    pub fn time(self, t: DateTime<Utc>) -> String {
        match self {
            Lang::De => t.format("%d.%m.%Y %H:%M UTC").to_string(),
            Lang::En => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    pub fn condition(self, c: Condition) -> &'static str {
        self.t(match c {
            Condition::New => Msg::CondNew,
            Condition::Good => Msg::CondGood,
            Condition::Worn => Msg::CondWorn,
            Condition::Damaged => Msg::CondDamaged,
            Condition::Defective => Msg::CondDefective,
        })
    }

    pub fn alert(self, alert: &str) -> &'static str {
        match alert.parse::<BorrowerAlert>() {
            Ok(BorrowerAlert::Departed) => self.t(Msg::AlertDeparted),
            Ok(BorrowerAlert::Disabled) => self.t(Msg::AlertDisabled),
            Ok(BorrowerAlert::LeftSchool) => self.t(Msg::AlertLeftSchool),
            Err(_) => self.t(Msg::AlertUnknown),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        if let Some(lang) = crate::signin::cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse)
        {
            return Ok(lang);
        }
        Ok(parts
            .headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::from_accept_language)
            .unwrap_or_default())
    }
}

macro_rules! messages {
    ($($name:ident => $de:literal, $en:literal;)+) => {
        /// A text of the UI.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($name),+ }

        impl Msg {
            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Msg::$name, Lang::De) => $de, (Msg::$name, Lang::En) => $en,)+
                }
            }
        }
    };
}

messages! {
    AppName => "Flotte – Leihgeräte", "Flotte – device loans";
    SkipToContent => "Zum Inhalt springen", "Skip to content";
    NavStart => "Start", "Home";
    NavLoans => "Ausleihen", "Loans";
    NavOverdue => "Überfällig", "Overdue";
    NavDevices => "Geräte", "Devices";
    NavPupils => "Schüler:innen", "Pupils";
    NavBulk => "Klassensatz", "Class set";
    NavImport => "Lieferliste", "Delivery list";
    SignOut => "Abmelden", "Sign out";
    SignIn => "Anmelden", "Sign in";
    Username => "Benutzername", "User name";
    Password => "Passwort", "Password";
    SignedInAs => "Angemeldet als", "Signed in as";
    TechnicianAllSchools => "Technik, alle Schulen", "technician, all schools";
    SwitchLanguage => "English", "Deutsch";
    ScanLabel => "Gerät suchen oder Etikett scannen", "Find a device or scan its label";
    ScanHint => "Inventarnummer, Seriennummer oder QR-Code des Etiketts", "Asset tag, serial number or the label's QR code";
    Search => "Suchen", "Search";
    OpenLoans => "Offene Ausleihen", "Open loans";
    OverdueLoans => "Überfällige Ausleihen", "Overdue loans";
    FlaggedLoans => "Ausleihen mit Handlungsbedarf", "Loans needing action";
    ReturnedLoans => "Zurückgegebene Ausleihen", "Returned loans";
    AllLoans => "Alle Ausleihen", "All loans";
    NoLoans => "Keine Ausleihen.", "No loans.";
    NoDevices => "Keine Geräte gefunden.", "No devices found.";
    NoPupils => "Keine Schüler:innen gefunden.", "No pupils found.";
    Device => "Gerät", "Device";
    Devices => "Geräte", "Devices";
    AssetTag => "Inventarnummer", "Asset tag";
    Serial => "Seriennummer", "Serial number";
    Model => "Modell", "Model";
    Platform => "Plattform", "Platform";
    School => "Schule", "School";
    AllSchools => "Alle Schulen", "All schools";
    Class => "Klasse", "Class";
    AnyClass => "Alle Klassen", "All classes";
    Pupil => "Schüler:in", "Pupil";
    Name => "Name", "Name";
    Status => "Status", "Status";
    StatusAvailable => "verfügbar", "available";
    StatusLent => "verliehen", "lent";
    StatusOpen => "ausgeliehen", "on loan";
    StatusOverdue => "überfällig", "overdue";
    StatusReturned => "zurückgegeben", "returned";
    LentAt => "Ausgegeben am", "Lent on";
    LentBy => "Ausgegeben von", "Lent by";
    DueDate => "Rückgabe bis", "Due";
    ReturnedAt => "Zurück am", "Returned on";
    ReturnedTo => "Zurückgenommen von", "Returned to";
    Accessories => "Zubehör", "Accessories";
    AccessoriesBack => "Zubehör zurück", "Accessories returned";
    ConditionOut => "Zustand bei Ausgabe", "Condition at hand-out";
    ConditionIn => "Zustand bei Rückgabe", "Condition at return";
    Damage => "Schäden / Fehlendes", "Damage / missing parts";
    Notes => "Bemerkungen", "Notes";
    None_ => "keins", "none";
    CondNew => "neu", "new";
    CondGood => "gut", "good";
    CondWorn => "Gebrauchsspuren", "signs of use";
    CondDamaged => "beschädigt", "damaged";
    CondDefective => "defekt", "defective";
    AlertDeparted => "hat die Schule verlassen (nicht mehr im Verzeichnis)", "has left (no longer in the directory)";
    AlertDisabled => "Konto gesperrt", "account disabled";
    AlertLeftSchool => "nicht mehr an dieser Schule", "no longer at this school";
    AlertUnknown => "Handlungsbedarf", "needs action";
    Lend => "Ausleihen", "Lend";
    LendDevice => "Gerät ausleihen", "Lend device";
    LendTo => "Ausleihen an", "Lend to";
    FindPupil => "Schüler:in suchen (Name oder Klasse)", "Find a pupil (name or class)";
    ChoosePupil => "Schüler:in auswählen", "Choose the pupil";
    HasOpenLoan => "hat schon ein Gerät", "already has a device";
    ReturnDevice => "Rücknahme", "Return";
    TakeBack => "Gerät zurücknehmen", "Take the device back";
    EraseQuestion => "Gerät beim Zurücknehmen löschen?", "Erase the device on return?";
    EraseYes => "Ja, Gerät auf Werkseinstellungen zurücksetzen (alle Daten werden gelöscht)", "Yes, reset it to factory settings (all data is erased)";
    EraseNo => "Nein, nicht löschen", "No, do not erase";
    EraseQueued => "Löschbefehl an das Gerät gesendet", "Erase command sent to the device";
    EraseChoose => "Bitte wählen Sie, ob das Gerät beim Zurücknehmen gelöscht werden soll.", "Please choose whether the device is to be erased on return.";
    DueMissing => "Bitte geben Sie ein gültiges Rückgabedatum an.", "Please give a valid due date.";
    ConditionMissing => "Bitte wählen Sie den Zustand des Geräts.", "Please choose the device's condition.";
    Agreement => "Leihvertrag", "Loan agreement";
    Agreements => "Leihverträge", "Loan agreements";
    PrintAgreement => "Leihvertrag drucken", "Print loan agreement";
    PrintAll => "Alle drucken", "Print all";
    Print => "Drucken", "Print";
    Back => "Zurück", "Back";
    LoanSaved => "Das Gerät ist ausgeliehen.", "The device is lent.";
    LoanReturned => "Das Gerät ist zurückgenommen.", "The device is back.";
    History => "Verlauf", "History";
    LoanHistory => "Ausleihverlauf", "Loan history";
    AnonymousHistory => "Frühere Ausleihen (anonymisiert)", "Earlier loans (anonymised)";
    CurrentLoan => "Aktuelle Ausleihe", "Current loan";
    Details => "Details", "Details";
    Open => "Öffnen", "Open";
    Register => "Geräteverzeichnis", "Device register";
    FundingProgramme => "Förderprogramm", "Funding programme";
    PurchaseDate => "Kaufdatum", "Purchase date";
    WarrantyEnd => "Garantie bis", "Warranty until";
    Enrolment => "Verwaltung", "Management";
    EnrolRegistered => "noch nicht eingerichtet", "not enrolled yet";
    EnrolEnrolled => "eingerichtet", "enrolled";
    EnrolUnenrolled => "abgemeldet", "unenrolled";
    OnlyAvailable => "nur verfügbare", "available only";
    PrintLabels => "Etiketten drucken", "Print labels";
    Labels => "Etiketten", "Labels";
    SelectAll => "Alle auswählen", "Select all";
    ImportTitle => "Lieferliste einlesen", "Import a delivery list";
    ImportHelp => "CSV des Lieferanten mit den Spalten Seriennummer, Modell, Plattform, Inventarnummer, Schule, Förderprogramm, Kaufdatum, Garantie bis. Datei wählen oder den Inhalt einfügen.", "The supplier's CSV with the columns serial number, model, platform, asset tag, school, funding programme, purchase date, warranty end. Choose the file or paste its content.";
    ImportFile => "Datei", "File";
    ImportContent => "Inhalt der Liste (CSV)", "Content of the list (CSV)";
    ImportCheck => "Prüfen (ändert nichts)", "Check (changes nothing)";
    ImportApply => "Einlesen", "Import";
    ImportChecked => "Prüfung: so würde die Liste das Verzeichnis ändern. Noch ist nichts geändert.", "Check: this is what the list would change. Nothing has changed yet.";
    ImportDone => "Die Lieferliste ist eingelesen.", "The delivery list is imported.";
    ImportRefused => "Die Liste wurde nicht eingelesen; nichts wurde geändert. Fehlerhafte Zeilen:", "The list was not imported; nothing was changed. Bad lines:";
    Line => "Zeile", "Line";
    Action => "Änderung", "Change";
    ActionCreate => "neu", "new";
    ActionUpdate => "geändert", "changed";
    ActionUnchanged => "unverändert", "unchanged";
    Created => "neu", "new";
    Updated => "geändert", "changed";
    Unchanged => "unverändert", "unchanged";
    TechniciansOnly => "Nur für die Technik.", "Technicians only.";
    BulkTitle => "Klassensatz ausleihen", "Lend a class set";
    BulkStep1 => "1. Klasse und Bedingungen wählen", "1. Choose the class and terms";
    BulkStep2 => "2. Geräte scannen (eins pro Zeile)", "2. Scan the devices (one per line)";
    BulkScanHint => "Etiketten nacheinander scannen; jeder Scan ist eine Zeile.", "Scan the labels one after another; each scan is a line.";
    BulkPreview => "Zuordnung prüfen", "Check the pairing";
    BulkPairing => "Zuordnung Gerät – Schüler:in", "Pairing device – pupil";
    BulkConfirm => "Zuordnung bestätigen und ausleihen", "Confirm the pairing and lend";
    BulkNoDevice => "– kein Gerät –", "– no device –";
    BulkDone => "Die Geräte sind ausgeliehen.", "The devices are lent.";
    BulkUnknownDevices => "Nicht gefunden oder schon verliehen", "Not found or already lent";
    BulkMoreDevices => "Mehr Geräte als Schüler:innen; übrig", "More devices than pupils; left over";
    ChooseClass => "Klasse wählen", "Choose a class";
    Next => "Weiter", "Next";
    Error => "Nicht ausgeführt", "Not done";
    NotFound => "Nicht gefunden", "Not found";
    NothingChanged => "Es wurde nichts geändert.", "Nothing was changed.";
    Overview => "Übersicht", "Overview";
    OpenCount => "ausgeliehen", "on loan";
    OverdueCount => "überfällig", "overdue";
    FlaggedCount => "mit Handlungsbedarf", "need action";
    QuickLinks => "Schnellzugriff", "Shortcuts";
    PupilLoans => "Ausleihen der Schülerin / des Schülers", "The pupil's loans";
    State => "Konto", "Account";
    StateActive => "aktiv", "active";
    StateDisabled => "gesperrt", "disabled";
    StateDeparted => "nicht mehr im Verzeichnis", "no longer in the directory";
    Borrower => "Entleiher:in", "Borrower";
    Lender => "Verleiher", "Lender";
    AgreementIntro => "zwischen dem Schulträger als Verleiher und der Schülerin / dem Schüler, vertreten durch die Erziehungsberechtigten, als Entleiher:in", "between the school board as lender and the pupil, represented by the parents or guardians, as borrower";
    AgreementObject => "Leihgegenstand", "Item lent";
    AgreementTerms => "Bedingungen", "Terms";
    SignatureParent => "Unterschrift Erziehungsberechtigte:r", "Signature of a parent or guardian";
    SignaturePupil => "Unterschrift Schüler:in", "Signature of the pupil";
    SignatureSchool => "Unterschrift Schule", "Signature for the school";
    PlaceDate => "Ort, Datum", "Place, date";
    LoanNumber => "Ausleihe", "Loan";
    Today => "heute", "today";
    DaysOverdue => "Tage überfällig", "days overdue";
}

/// The built-in terms of the loan agreement (`loans.agreement_terms` replaces them).
pub(crate) fn default_terms(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::De => &[
            "Der Schulträger überlässt der Schülerin / dem Schüler das oben genannte Gerät mit Zubehör unentgeltlich zur Nutzung für den Unterricht und das häusliche Lernen. Das Gerät bleibt Eigentum des Schulträgers.",
            "Die Leihe endet mit dem oben genannten Rückgabedatum, mit dem Verlassen der Schule oder auf Verlangen der Schule. Das Gerät ist dann mit allem Zubehör in der Schule zurückzugeben.",
            "Das Gerät ist sorgfältig zu behandeln, vor Beschädigung, Verlust und Diebstahl zu schützen und nicht an Dritte weiterzugeben. Schäden, Verlust oder Diebstahl sind der Schule unverzüglich zu melden.",
            "Das Gerät wird von der Schule zentral verwaltet (Mobile-Device-Management). Die Verwaltung sieht Geräteangaben wie Modell, Seriennummer, Betriebssystem und Speicherplatz, aber keine Inhalte wie Fotos, Nachrichten oder den Browserverlauf.",
            "Einstellungen, die die Schule vorgibt, dürfen nicht umgangen werden. Das Gerät darf nicht für rechtswidrige Zwecke genutzt werden.",
            "Bei der Rückgabe kann das Gerät auf Werkseinstellungen zurückgesetzt werden; persönliche Daten sind vorher zu sichern.",
            "Für Schäden, die über die übliche Abnutzung hinausgehen und vorsätzlich oder grob fahrlässig verursacht wurden, kann der Schulträger Ersatz verlangen. Die Daten dieser Ausleihe werden sechs Monate nach der Rückgabe gelöscht, bei festgestellten Schäden nach Klärung.",
        ],
        Lang::En => &[
            "The school board lends the pupil the device and accessories above free of charge for lessons and learning at home. The device remains the school board's property.",
            "The loan ends on the due date above, when the pupil leaves the school, or when the school asks for the device. It is then to be returned to the school with all accessories.",
            "The device is to be handled with care, protected from damage, loss and theft, and not passed on to others. Damage, loss or theft must be reported to the school at once.",
            "The school manages the device centrally (mobile device management). The management sees device facts such as model, serial number, operating system and storage, but no content such as photos, messages or browsing history.",
            "Settings the school makes must not be circumvented. The device must not be used for unlawful purposes.",
            "On return the device may be reset to factory settings; personal data must be saved beforehand.",
            "The school board may claim compensation for damage beyond normal wear caused intentionally or by gross negligence. The data of this loan is deleted six months after the return, or once recorded damage is settled.",
        ],
    }
}

/// A broken loan rule in the UI's language.
pub(crate) fn rule_text(lang: Lang, e: &LoanRuleError) -> String {
    use LoanRuleError as E;
    if lang == Lang::En {
        return e.to_string();
    }
    match e {
        E::DeviceNotFound { device } => format!("Gerät {device} wurde nicht gefunden."),
        E::PupilNotFound { person } => format!("Schüler:in {person} wurde nicht gefunden."),
        E::LoanNotFound { loan } => format!("Ausleihe {loan} wurde nicht gefunden."),
        E::DeviceWithoutSchool { device } => format!(
            "Gerät {device} gehört zu keiner Schule; die Technik muss es erst einer Schule zuordnen."
        ),
        E::AlreadyLent { device, loan } => format!(
            "Gerät {device} ist bereits ausgeliehen (offene Ausleihe {loan}). Bitte erst zurücknehmen."
        ),
        E::LentMeanwhile { device } => {
            format!("Gerät {device} wurde im selben Moment von jemand anderem ausgeliehen.")
        }
        E::BorrowerInactive { person, state } => format!(
            "{person} kann kein Gerät ausleihen: das Konto ist {}.",
            match state.as_str() {
                "departed" => "nicht mehr im Verzeichnis",
                "disabled" => "gesperrt",
                other => other,
            }
        ),
        E::NotAPupilOfSchool { person, device } => format!(
            "{person} ist keine Schülerin / kein Schüler der Schule, zu der Gerät {device} gehört."
        ),
        E::DueDateInPast { due } => format!(
            "Das Rückgabedatum {} liegt in der Vergangenheit.",
            lang.date(*due)
        ),
        E::DueDateTooFar { due, max_days } => format!(
            "Das Rückgabedatum {} liegt mehr als {max_days} Tage in der Zukunft.",
            lang.date(*due)
        ),
        E::UnknownAccessory { name, known } => {
            format!("Unbekanntes Zubehör „{name}“ (bekannt: {known}).")
        }
        E::AlreadyReturned { loan, returned_on } => format!(
            "Die Ausleihe {loan} wurde bereits am {} zurückgegeben.",
            lang.date(*returned_on)
        ),
        E::ReturnedMeanwhile { loan } => {
            format!("Die Ausleihe {loan} wurde im selben Moment von jemand anderem zurückgenommen.")
        }
        E::DeviceTwice { device } => format!("Gerät {device} ist doppelt aufgeführt."),
        E::PupilTwice { person } => format!("{person} ist doppelt aufgeführt."),
        E::NothingToLend => "Keinem Gerät ist eine Schülerin oder ein Schüler zugeordnet.".into(),
        E::InPair {
            device,
            person,
            error,
        } => format!("{device} → {person}: {}", rule_text(lang, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_unless_the_browser_prefers_english() {
        assert_eq!(
            Lang::from_accept_language("en-GB,en;q=0.9,de;q=0.8"),
            Lang::En
        );
        assert_eq!(
            Lang::from_accept_language("de-DE,de;q=0.9,en;q=0.8"),
            Lang::De
        );
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::De);
        assert_eq!(Msg::Lend.text(Lang::De), "Ausleihen");
        assert_eq!(Msg::Lend.text(Lang::En), "Lend");
        assert_eq!(Lang::De.date("2026-11-27".parse().unwrap()), "27.11.2026");
    }
}
