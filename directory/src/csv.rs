//! The local directory's input: a CSV file in the column layout of
//! UCS@school's own user import (`ucs-school-user-import`), so that a trial
//! needs no LDAP server and a school can hand over the file it would feed
//! UCS@school anyway.
//!
//! Accepted headers (case and surrounding spaces ignored; German as in
//! UCS@school's `user_import_http-api.json` / `ucs-school-testuser-import.json`
//! mappings, or the import attribute names):
//!
//! | column | also | meaning |
//! |---|---|---|
//! | `Schule` / `Schulen` | `school`, `schools` | school code(s), comma-separated; the first is the home school |
//! | `Vorname` | `firstname` | given name (required) |
//! | `Nachname` | `lastname` | family name (required) |
//! | `Benutzertyp` | `__role`, `role` | `student`, `teacher`, `staff`, `teacher_and_staff` (`staffteacher`), and Flotte's `school_admin` |
//! | `Klassen` | `school_classes` | classes, comma-separated: `5a` (home school) or `gym1-5a` |
//! | `EMail` | `email`, `mail` | mail address |
//! | `Benutzername` | `name`, `username` | user name (else made like UCS@school's scheme: `vorname.nachname`, umlauts folded, a counter for repeats) |
//! | `record_uid` | `recordUID` | a stable id from the school's own records |
//!
//! Every other column (`Beschreibung`, `Telefon`, `Passwort`, birth dates, …) is
//! ignored: Flotte never reads more than it stores. The delimiter (`,` `;` or
//! tab) is taken from the header line; text must be UTF-8.
//!
//! Identity: a person's `external_id` is a UUIDv5 of `record_uid`, else of the
//! user name, so importing the same file again changes nothing and a pupil
//! whose school or class changes stays the same person.

use std::collections::{BTreeMap, BTreeSet};

use flotte_core::directory::{
    DirGroup, DirPerson, DirSchool, DirectorySnapshot, GroupKind, Role, SchoolRole, assign_classes,
};
use uuid::Uuid;

/// The namespace of every id the CSV import derives. Fixed forever: changing
/// it would make every imported person new.
const NAMESPACE: Uuid = Uuid::from_u128(0x6a0c_52f4_1b0e_4c1f_9d5e_0f1e_c5a1_0001);

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// The role of every row when the file has no `Benutzertyp` column
    /// (UCS@school's `--role`): `student`, `teacher`, `staff`, …
    pub default_role: Option<String>,
    /// Display names of schools Flotte already has, by code (lower case), so
    /// that an import keeps them; new schools are named by their code.
    pub school_names: BTreeMap<String, String>,
}

/// The file cannot be used at all (as opposed to single bad rows, which end
/// up in the snapshot's `problems`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the CSV file is empty")]
    Empty,
    #[error("the CSV file is not UTF-8 text (save it as UTF-8): {0}")]
    Encoding(String),
    #[error("the CSV header has no {0} column")]
    MissingColumn(&'static str),
    #[error(
        "the CSV has no Benutzertyp column and no role was given (student, teacher, staff, teacher_and_staff)"
    )]
    NoRole,
    #[error("unknown role {0:?} (student, teacher, staff, teacher_and_staff, school_admin)")]
    UnknownRole(String),
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
}

/// The stable id of a person with this `record_uid` or user name.
pub fn person_id(key: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("person:{}", key.trim().to_lowercase()).as_bytes(),
    )
}

/// The stable id of a school with this code.
pub fn school_id(code: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("school:{}", code.trim().to_lowercase()).as_bytes(),
    )
}

fn class_id(school: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("class:{}/{}", school.to_lowercase(), name.to_lowercase()).as_bytes(),
    )
}

/// UCS@school's `__role` values (its CSV reader's table), plus `school_admin`.
fn roles_of(value: &str) -> Option<Vec<Role>> {
    match value.trim().to_lowercase().as_str() {
        "student" | "pupil" => Some(vec![Role::Pupil]),
        "teacher" => Some(vec![Role::Teacher]),
        "staff" => Some(vec![Role::Staff]),
        "teacher_and_staff" | "staffteacher" => Some(vec![Role::Teacher, Role::Staff]),
        "school_admin" => Some(vec![Role::SchoolAdmin]),
        _ => None,
    }
}

#[derive(Default)]
struct Columns {
    schools: Option<usize>,
    given: Option<usize>,
    family: Option<usize>,
    role: Option<usize>,
    classes: Option<usize>,
    mail: Option<usize>,
    username: Option<usize>,
    record_uid: Option<usize>,
}

impl Columns {
    fn from_header(header: &[String]) -> Columns {
        let mut columns = Columns::default();
        for (i, name) in header.iter().enumerate() {
            let slot = match name.trim().to_lowercase().as_str() {
                "schule" | "schulen" | "school" | "schools" => &mut columns.schools,
                "vorname" | "firstname" => &mut columns.given,
                "nachname" | "lastname" => &mut columns.family,
                "benutzertyp" | "__role" | "role" => &mut columns.role,
                "klassen" | "klasse" | "school_classes" => &mut columns.classes,
                "email" | "e-mail" | "mail" => &mut columns.mail,
                "benutzername" | "name" | "username" => &mut columns.username,
                "record_uid" | "recorduid" => &mut columns.record_uid,
                _ => continue,
            };
            slot.get_or_insert(i);
        }
        columns
    }
}

/// Reads a UCS@school import CSV into a full directory snapshot for the
/// ordinary planner (and its safety checks). A bad row whose person can still
/// be identified is held back (left as Flotte has it); one that cannot makes
/// the snapshot incomplete, so nothing is applied.
pub fn parse_ucsschool_csv(
    bytes: &[u8],
    options: &CsvOptions,
) -> Result<DirectorySnapshot, CsvError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CsvError::Encoding(e.to_string()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let delimiter = flotte_core::csv::sniff_delimiter(text.lines().next().ok_or(CsvError::Empty)?);
    let mut records = flotte_core::csv::records(text, delimiter)
        .map_err(|e| CsvError::Syntax {
            line: e.line,
            reason: e.reason,
        })?
        .into_iter();
    let (_, header) = records.next().ok_or(CsvError::Empty)?;
    let columns = Columns::from_header(&header);
    let schools_col = columns.schools.ok_or(CsvError::MissingColumn("Schule"))?;
    let given_col = columns.given.ok_or(CsvError::MissingColumn("Vorname"))?;
    let family_col = columns.family.ok_or(CsvError::MissingColumn("Nachname"))?;
    let default_roles = match (&columns.role, &options.default_role) {
        (Some(_), _) => None,
        (None, Some(role)) => {
            Some(roles_of(role).ok_or_else(|| CsvError::UnknownRole(role.clone()))?)
        }
        (None, None) => return Err(CsvError::NoRole),
    };

    let mut snapshot = DirectorySnapshot {
        complete: true,
        ..DirectorySnapshot::default()
    };
    let mut schools: BTreeMap<String, String> = BTreeMap::new();
    let mut classes: BTreeMap<(String, String), BTreeSet<Uuid>> = BTreeMap::new();
    let mut seen: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut generated: BTreeMap<String, usize> = BTreeMap::new();

    for (line, row) in records {
        if row.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let cell = |col: Option<usize>| -> String {
            col.and_then(|c| row.get(c))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let given = cell(Some(given_col));
        let family = cell(Some(family_col));
        let username = match cell(columns.username) {
            explicit if !explicit.is_empty() => explicit,
            _ if given.is_empty() || family.is_empty() => String::new(),
            _ => {
                let base = format!("{}.{}", fold(&given), fold(&family));
                let n = generated.entry(base.clone()).or_insert(0);
                *n += 1;
                if *n == 1 { base } else { format!("{base}{n}") }
            }
        };
        let record_uid = cell(columns.record_uid);
        let key = if record_uid.is_empty() {
            &username
        } else {
            &record_uid
        };
        if key.is_empty() {
            snapshot.complete = false;
            snapshot.problems.push(format!(
                "line {line}: no name, user name or record_uid: the row cannot be identified"
            ));
            continue;
        }
        let external_id = person_id(key);
        if let Some(first) = seen.insert(external_id, line) {
            snapshot.complete = false;
            snapshot.problems.push(format!(
                "line {line}: {key} appears again (first on line {first})"
            ));
            continue;
        }
        let mut hold_back = |reason: String| {
            snapshot
                .problems
                .push(format!("line {line} ({username}): {reason}"));
            snapshot.held_back.push(external_id);
        };
        if given.is_empty() || family.is_empty() {
            hold_back("Vorname and Nachname are required".to_owned());
            continue;
        }
        let codes: Vec<String> = split_list(&cell(Some(schools_col)));
        if codes.is_empty() {
            hold_back("no school".to_owned());
            continue;
        }
        if let Some(bad) = codes.iter().find(|c| !is_code(c)) {
            hold_back(format!(
                "school code {bad:?} must be letters, digits, '-' or '_'"
            ));
            continue;
        }
        let roles = match &default_roles {
            Some(roles) => roles.clone(),
            None => match roles_of(&cell(columns.role)) {
                Some(roles) => roles,
                None => {
                    hold_back(format!("unknown Benutzertyp {:?}", cell(columns.role)));
                    continue;
                }
            },
        };
        let mut memberships: Vec<SchoolRole> = codes
            .iter()
            .flat_map(|code| {
                roles.iter().map(|role| SchoolRole {
                    school_code: code.clone(),
                    role: *role,
                })
            })
            .collect();
        memberships.sort();
        memberships.dedup();
        for code in &codes {
            schools
                .entry(code.to_lowercase())
                .or_insert_with(|| code.clone());
        }
        for class in split_list(&cell(columns.classes)) {
            let (school, name) = class_of(&class, &codes);
            classes
                .entry((school, name))
                .or_default()
                .insert(external_id);
        }
        let mail = cell(columns.mail);
        snapshot.people.push(DirPerson {
            external_id,
            username,
            given_name: given,
            family_name: family,
            mail: (!mail.is_empty()).then_some(mail),
            memberships,
            classes: Vec::new(),
            disabled: false,
            group_dns: Vec::new(),
        });
    }

    snapshot.schools = schools
        .into_values()
        .map(|code| DirSchool {
            external_id: school_id(&code),
            display_name: options
                .school_names
                .get(&code.to_lowercase())
                .cloned()
                .unwrap_or_else(|| code.clone()),
            code,
        })
        .collect();
    snapshot.classes = classes
        .into_iter()
        .map(|((school, name), members)| DirGroup {
            external_id: class_id(&school, &name),
            school_code: school,
            name,
            kind: GroupKind::Class,
            member_external_ids: members.into_iter().collect(),
        })
        .collect();
    assign_classes(&mut snapshot.people, &snapshot.classes);
    Ok(snapshot)
}

/// `gym1-5a` is class `5a` of `gym1` when `gym1` is one of the row's schools;
/// anything else is a class of the home school.
fn class_of(class: &str, codes: &[String]) -> (String, String) {
    for code in codes {
        if let Some(rest) = class
            .get(..code.len() + 1)
            .filter(|prefix| prefix.eq_ignore_ascii_case(&format!("{code}-")))
            .and_then(|_| class.get(code.len() + 1..))
            && !rest.is_empty()
        {
            return (code.clone(), rest.to_owned());
        }
    }
    (codes[0].clone(), class.to_owned())
}

fn is_code(code: &str) -> bool {
    code.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// UCS@school's `<:umlauts>…<:lower>`: umlauts spelled out, other accents
/// dropped, anything but letters, digits, `-` and `.` removed.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' | 'æ' => out.push_str("ae"),
            'ö' | 'ø' | 'œ' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'á' | 'à' | 'â' | 'ã' | 'å' | 'ą' => out.push('a'),
            'ç' | 'ć' | 'č' => out.push('c'),
            'é' | 'è' | 'ê' | 'ë' | 'ę' | 'ě' => out.push('e'),
            'í' | 'ì' | 'î' | 'ï' | 'ı' => out.push('i'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ó' | 'ò' | 'ô' | 'õ' => out.push('o'),
            'ś' | 'š' | 'ş' => out.push('s'),
            'ú' | 'ù' | 'û' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            'ł' => out.push('l'),
            c if c.is_ascii_alphanumeric() || c == '-' => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotte_core::directory::ClassRef;

    fn parse(csv: &str) -> DirectorySnapshot {
        parse_ucsschool_csv(csv.as_bytes(), &CsvOptions::default()).expect("parses")
    }

    #[test]
    fn the_testuser_import_layout_reads_people_schools_and_classes() {
        let snap = parse(
            "\u{feff}\"Schulen\",\"Benutzertyp\",\"Vorname\",\"Nachname\",\"Klassen\",\"Beschreibung\",\"Telefon\",\"EMail\"\r\n\
             \"gym1\",\"student\",\"Anna\",\"Müller\",\"gym1-5a\",\"\",\"0451 1234\",\"\"\r\n\
             \"gym1,gs2\",\"teacher\",\"Lena\",\"Lehrer\",\"gym1-5a,gs2-4a\",\"\",\"\",\"lena@schule.example\"\r\n\
             \"gs2\",\"teacher_and_staff\",\"Max\",\"Multi\",\"\",\"\",\"\",\"\"\r\n",
        );
        assert!(
            snap.complete && snap.problems.is_empty(),
            "{:?}",
            snap.problems
        );
        let codes: Vec<&str> = snap.schools.iter().map(|s| s.code.as_str()).collect();
        assert_eq!(codes, ["gs2", "gym1"]);
        let anna = &snap.people[0];
        assert_eq!(anna.username, "anna.mueller");
        assert_eq!(anna.external_id, person_id("anna.mueller"));
        assert_eq!(
            anna.classes,
            vec![ClassRef {
                school_code: "gym1".into(),
                name: "5a".into()
            }]
        );
        let lena = &snap.people[1];
        assert_eq!(lena.memberships.len(), 2);
        assert_eq!(lena.classes.len(), 2);
        assert_eq!(lena.mail.as_deref(), Some("lena@schule.example"));
        assert_eq!(
            snap.people[2]
                .memberships
                .iter()
                .map(|m| m.role)
                .collect::<Vec<_>>(),
            [Role::Teacher, Role::Staff]
        );
        assert_eq!(snap.classes.len(), 2);
    }

    #[test]
    fn semicolons_a_username_column_and_plain_class_names_work() {
        let snap = parse(
            "Schule;Vorname;Nachname;Klassen;Benutzername;Benutzertyp\n\
             gym1;Ben;Schulz;5b;b.schulz;student\n",
        );
        assert_eq!(snap.people[0].username, "b.schulz");
        assert_eq!(snap.people[0].classes[0].name, "5b");
        assert_eq!(snap.people[0].classes[0].school_code, "gym1");
    }

    #[test]
    fn repeated_generated_names_get_a_counter_and_the_same_id_each_import() {
        let csv =
            "Schule,Vorname,Nachname,Benutzertyp\ngym1,Jan,Ohm,student\ngym1,Jan,Ohm,student\n";
        let first = parse(csv);
        assert_eq!(first.people[1].username, "jan.ohm2");
        assert_eq!(parse(csv), first, "the same file gives the same snapshot");
    }

    #[test]
    fn a_bad_row_is_held_back_and_an_unidentifiable_one_makes_the_read_incomplete() {
        let snap = parse(
            "Schule,Vorname,Nachname,Benutzertyp,Benutzername\n\
             gym1,Ida,Id,pirate,ida.id\n\
             gym1,,,student,\n",
        );
        assert_eq!(snap.held_back, vec![person_id("ida.id")]);
        assert!(!snap.complete);
        assert_eq!(snap.problems.len(), 2, "{:?}", snap.problems);
        assert!(snap.problems[0].contains("pirate"));
    }

    #[test]
    fn files_without_the_required_columns_are_refused() {
        let err =
            parse_ucsschool_csv(b"Vorname,Nachname\nA,B\n", &CsvOptions::default()).unwrap_err();
        assert_eq!(err, CsvError::MissingColumn("Schule"));
        let err = parse_ucsschool_csv(b"Schule,Vorname,Nachname\ng,A,B\n", &CsvOptions::default())
            .unwrap_err();
        assert_eq!(err, CsvError::NoRole);
        let with_role = CsvOptions {
            default_role: Some("teacher".into()),
            ..CsvOptions::default()
        };
        let snap = parse_ucsschool_csv(b"Schule,Vorname,Nachname\ng,A,B\n", &with_role)
            .expect("role given");
        assert_eq!(snap.people[0].memberships[0].role, Role::Teacher);
        assert!(matches!(
            parse_ucsschool_csv(b"\xff\xfe", &CsvOptions::default()),
            Err(CsvError::Encoding(_))
        ));
        assert!(matches!(
            parse_ucsschool_csv(b"Schule,Vorname\n\"g,A\n", &CsvOptions::default()),
            Err(CsvError::Syntax { .. })
        ));
    }

    #[test]
    fn passwords_and_other_columns_are_never_read() {
        let snap = parse(
            "Schule,Vorname,Nachname,Benutzertyp,Passwort,Geburtstag\ngym1,A,B,student,geheim,2012-01-01\n",
        );
        let json = serde_json::to_string(&snap).expect("json");
        assert!(!json.contains("geheim") && !json.contains("2012"), "{json}");
    }
}
