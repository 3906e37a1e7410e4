//! Behaviour of the builders: escaping round trips, stable identifiers, validation errors and
//! the JSON form the server stores.

mod common;

use common::{namespace, parse_document, parse_xml};
use flotte_profiles::apple::{
    Command, MdmEnrollment, Payload, Pkcs12Identity, Profile, ProfileError, ProfileNamespace,
    RootCertificate, ServerTrust, Wifi, WifiEncryption, WifiSecurity,
};
use flotte_profiles::windows::{
    self, CmdId, CmdIdSource, CommandBody, ComputerNameNode, CspError, Format, Item, KeyLocation,
    OneXAuthMode, PfxCertificate, Scope, SequentialCmdIds, SyncMlCommand, Thumbprint, WlanProfile,
    WlanSecurity,
};
use plist::Value;
use uuid::Uuid;

fn id(text: &str) -> CmdId {
    CmdId::new(text).unwrap()
}

fn psk_wlan(ssid: &str) -> WlanProfile {
    WlanProfile {
        ssid: ssid.to_owned(),
        hidden: false,
        auto_connect: true,
        security: WlanSecurity::Wpa2Personal {
            passphrase: "correct horse & <battery>".to_owned(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Windows escaping

#[test]
fn ssid_with_markup_characters_survives_the_syncml_and_wlan_round_trip() {
    let ssid = r#"Kids & <Guests> "5G" 'x'"#;
    let command = windows::wifi_profile(id("42"), Scope::Device, &psk_wlan(ssid)).unwrap();
    let xml = command.to_xml();

    let add = parse_document(&xml);
    assert_eq!(add.name, "Add");
    assert_eq!(add.child("CmdID").text, "42");
    let item = add.child("Item");
    assert_eq!(
        item.path(&["Target", "LocURI"]).text,
        "./Device/Vendor/MSFT/WiFi/Profile/Kids%20&%20%3CGuests%3E%20%225G%22%20'x'/WlanXml"
    );
    let format = item.path(&["Meta", "Format"]);
    assert_eq!(format.text, "chr");
    assert_eq!(format.attribute("xmlns"), Some("syncml:metinf"));

    // <Data> carries the WLAN profile as escaped text; once unescaped it is a document of its
    // own whose SSID is the original string.
    let wlan = parse_document(&item.child("Data").text);
    assert_eq!(wlan.name, "WLANProfile");
    assert_eq!(
        wlan.attribute("xmlns"),
        Some("http://www.microsoft.com/networking/WLAN/profile/v1")
    );
    assert_eq!(wlan.child("name").text, ssid);
    assert_eq!(wlan.path(&["SSIDConfig", "SSID", "name"]).text, ssid);
    let hex: String = ssid.bytes().map(|byte| format!("{byte:02X}")).collect();
    assert_eq!(wlan.path(&["SSIDConfig", "SSID", "hex"]).text, hex);
    assert_eq!(
        wlan.path(&["MSM", "security", "sharedKey", "keyMaterial"])
            .text,
        "correct horse & <battery>"
    );
}

#[test]
fn non_ascii_and_slash_in_ssid_are_percent_encoded_in_the_uri() {
    assert_eq!(
        windows::wifi_profile_uri(Scope::User, "Schüler/WLAN 100%"),
        "./User/Vendor/MSFT/WiFi/Profile/Sch%C3%BCler%2FWLAN%20100%25/WlanXml"
    );
}

#[test]
fn eap_tls_profile_names_the_radius_server_and_its_ca() {
    let der = b"some DER bytes";
    let wlan = WlanProfile {
        ssid: "Schulnetz".to_owned(),
        hidden: true,
        auto_connect: true,
        security: WlanSecurity::Wpa2EnterpriseTls {
            server_names: vec!["radius1.example".to_owned(), "radius2.example".to_owned()],
            trusted_root_cas: vec![Thumbprint::of_der(der)],
            auth_mode: OneXAuthMode::MachineOrUser,
        },
    };
    let doc = parse_document(&wlan.to_xml().unwrap());
    assert_eq!(doc.path(&["SSIDConfig", "nonBroadcast"]).text, "true");
    let security = doc.path(&["MSM", "security"]);
    assert_eq!(
        security.path(&["authEncryption", "authentication"]).text,
        "WPA2"
    );
    assert_eq!(security.path(&["authEncryption", "useOneX"]).text, "true");
    let one_x = security.child("OneX");
    assert_eq!(one_x.child("authMode").text, "machineOrUser");
    let host = one_x.path(&["EAPConfig", "EapHostConfig"]);
    assert_eq!(host.path(&["EapMethod", "Type"]).text, "13");
    let eap_type = host.path(&["Config", "Eap", "EapType"]);
    assert_eq!(
        eap_type.attribute("xmlns"),
        Some("http://www.microsoft.com/provisioning/EapTlsConnectionPropertiesV1")
    );
    let validation = eap_type.child("ServerValidation");
    assert_eq!(
        validation.child("ServerNames").text,
        "radius1.example;radius2.example"
    );
    let expected: Vec<String> = Thumbprint::of_der(der)
        .as_str()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_lowercase())
        .collect();
    assert_eq!(validation.child("TrustedRootCA").text, expected.join(" "));
    assert_eq!(
        validation
            .child("DisableUserPromptForServerValidation")
            .text,
        "true"
    );
}

#[test]
fn peap_profile_uses_mschapv2_inside() {
    let wlan = WlanProfile {
        ssid: "Lehrkraefte".to_owned(),
        hidden: false,
        auto_connect: true,
        security: WlanSecurity::Wpa2EnterprisePeap {
            server_names: vec!["radius.example".to_owned()],
            trusted_root_cas: vec![Thumbprint::of_der(b"ca")],
            auth_mode: OneXAuthMode::User,
        },
    };
    let doc = parse_document(&wlan.to_xml().unwrap());
    let eap = doc.path(&[
        "MSM",
        "security",
        "OneX",
        "EAPConfig",
        "EapHostConfig",
        "Config",
        "Eap",
    ]);
    assert_eq!(eap.child("Type").text, "25");
    assert_eq!(eap.path(&["EapType", "Eap", "Type"]).text, "26");
}

#[test]
fn text_data_with_markup_survives_the_round_trip() {
    let mut ids = SequentialCmdIds::new("n", 1).unwrap();
    let text = "Eigentum der Schule <Musterstadt> & Co. \"Danke\"\nZeile 2";
    let commands = windows::lock_screen_message(&mut ids, None, text).unwrap();
    assert_eq!(commands.len(), 1);
    let replace = parse_document(&commands[0].to_xml());
    assert_eq!(replace.path(&["Item", "Data"]).text, text);
}

#[test]
fn several_commands_render_as_sibling_elements() {
    let commands = vec![
        windows::reboot_now(id("a")).unwrap(),
        windows::remote_wipe(id("b")).unwrap(),
    ];
    let elements = parse_xml(&windows::render_commands(&commands));
    let names: Vec<_> = elements
        .iter()
        .map(|e| (e.name.as_str(), e.child("CmdID").text.as_str()))
        .collect();
    assert_eq!(names, [("Exec", "a"), ("Exec", "b")]);
}

#[test]
fn thumbprint_is_the_sha1_of_the_der_bytes() {
    // FIPS 180 test vector: SHA-1("abc").
    assert_eq!(
        Thumbprint::of_der(b"abc").as_str(),
        "A9993E364706816ABA3E25717850C26C9CD0D89D"
    );
    assert_eq!(
        Thumbprint::from_hex("a9:99:3e:36:47:06:81:6a:ba:3e:25:71:78:50:c2:6c:9c:d0:d8:9d")
            .unwrap(),
        Thumbprint::of_der(b"abc")
    );
    assert!(Thumbprint::from_hex("abc").is_err());
    let command = windows::root_ca_certificate(id("r"), b"abc").unwrap();
    assert_eq!(
        command.target_uris(),
        [
            "./Device/Vendor/MSFT/RootCATrustedCertificates/Root/A9993E364706816ABA3E25717850C26C9CD0D89D/EncodedCertificate"
        ]
    );
}

#[test]
fn pfx_install_is_atomic_and_sends_the_blob_last() {
    let mut ids = SequentialCmdIds::new("c", 10).unwrap();
    let pfx = PfxCertificate {
        unique_id: "id 1".to_owned(),
        pfx: vec![1, 2, 3],
        password: "pw".to_owned(),
        key_location: KeyLocation::Software,
        key_exportable: Some(false),
        container_name: Some("flotte".to_owned()),
    };
    let command = windows::pfx_certificate_install(&mut ids, Scope::User, &pfx).unwrap();
    assert_eq!(command.cmd_id().as_str(), "c10");
    let CommandBody::Atomic(inner) = command.body() else {
        panic!("expected Atomic");
    };
    let nodes: Vec<_> = inner
        .iter()
        .map(|c| c.target_uris()[0].rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        nodes,
        [
            "KeyLocation",
            "PFXCertPassword",
            "PFXCertPasswordEncryptionType",
            "ContainerName",
            "PFXKeyExportable",
            "PFXCertBlob"
        ]
    );
    assert!(
        command.target_uris()[0]
            .starts_with("./User/Vendor/MSFT/ClientCertificateInstall/PFXCertInstall/id%201/")
    );
    assert_eq!(
        ids.next_cmd_id().as_str(),
        "c17",
        "one id per command, Atomic first"
    );
}

#[test]
fn windows_builders_reject_what_the_device_would_reject() {
    assert!(matches!(CmdId::new(""), Err(CspError::InvalidCmdId(_))));
    assert!(matches!(CmdId::new("a b"), Err(CspError::InvalidCmdId(_))));

    let long = "x".repeat(33);
    assert!(matches!(
        windows::wifi_profile(id("1"), Scope::Device, &psk_wlan(&long)),
        Err(CspError::InvalidField { field: "SSID", .. })
    ));
    assert_eq!(
        windows::wifi_profile(id("1"), Scope::Device, &psk_wlan("bell\u{7}")),
        Err(CspError::UnencodableText { field: "SSID" })
    );
    let mut short = psk_wlan("ok");
    short.security = WlanSecurity::Wpa2Personal {
        passphrase: "short".to_owned(),
    };
    assert!(windows::wifi_profile(id("1"), Scope::Device, &short).is_err());

    let unvalidated = WlanProfile {
        security: WlanSecurity::Wpa2EnterpriseTls {
            server_names: Vec::new(),
            trusted_root_cas: Vec::new(),
            auth_mode: OneXAuthMode::Machine,
        },
        ..psk_wlan("ok")
    };
    assert!(matches!(
        windows::wifi_profile(id("1"), Scope::Device, &unvalidated),
        Err(CspError::InvalidField {
            field: "ServerValidation",
            ..
        })
    ));

    let exportable_in_tpm = PfxCertificate {
        unique_id: "x".to_owned(),
        pfx: vec![1],
        password: String::new(),
        key_location: KeyLocation::TpmRequired,
        key_exportable: Some(true),
        container_name: None,
    };
    let mut ids = SequentialCmdIds::new("p", 1).unwrap();
    assert!(windows::pfx_certificate_install(&mut ids, Scope::Device, &exportable_in_tpm).is_err());

    assert!(windows::computer_name(id("1"), "has space", ComputerNameNode::default()).is_err());
    assert!(
        SyncMlCommand::new(id("1"), CommandBody::Get(vec![Item::target("/absolute")])).is_err()
    );
    assert!(SyncMlCommand::new(id("1"), CommandBody::Exec(Vec::new())).is_err());
}

#[test]
fn syncml_commands_round_trip_through_json_and_are_validated_on_the_way_in() {
    let mut ids = SequentialCmdIds::new("j", 1).unwrap();
    let pfx = PfxCertificate {
        unique_id: "u".to_owned(),
        pfx: vec![9, 9],
        password: "p".to_owned(),
        key_location: KeyLocation::default(),
        key_exportable: None,
        container_name: None,
    };
    let command = windows::pfx_certificate_install(&mut ids, Scope::Device, &pfx).unwrap();
    let json = serde_json::to_string(&command).unwrap();
    let back: SyncMlCommand = serde_json::from_str(&json).unwrap();
    assert_eq!(back, command);

    let bad = r#"{"cmd_id":"1","body":{"op":"get","items":[{"target":"/etc/passwd"}]}}"#;
    assert!(serde_json::from_str::<SyncMlCommand>(bad).is_err());
    let item = Item::with_data("./Device/x", Format::Int, "1");
    assert_eq!(item.format, Some(Format::Int));
}

// ---------------------------------------------------------------------------------------------
// Apple

fn wifi(ssid: &str, password: &str) -> Wifi {
    Wifi {
        ssid: ssid.to_owned(),
        hidden_network: false,
        auto_join: true,
        security: WifiSecurity::Personal {
            encryption: WifiEncryption::Wpa2,
            password: password.to_owned(),
        },
    }
}

fn payload_uuids(bytes: &[u8]) -> Vec<(String, String)> {
    let value = Value::from_reader_xml(bytes).unwrap();
    let top = value.as_dictionary().unwrap();
    let mut ids = vec![(
        top["PayloadIdentifier"].as_string().unwrap().to_owned(),
        top["PayloadUUID"].as_string().unwrap().to_owned(),
    )];
    for payload in top["PayloadContent"].as_array().unwrap() {
        let payload = payload.as_dictionary().unwrap();
        ids.push((
            payload["PayloadIdentifier"].as_string().unwrap().to_owned(),
            payload["PayloadUUID"].as_string().unwrap().to_owned(),
        ));
    }
    ids
}

#[test]
fn a_new_version_of_a_profile_keeps_its_identifiers() {
    let v1 = Profile::new(namespace(), "de.schule.wifi", "WLAN")
        .with_payload("wifi", wifi("Schule", "password-1"));
    let v2 = Profile::new(namespace(), "de.schule.wifi", "WLAN (neu)")
        .with_payload("wifi", wifi("Schule", "password-2"));
    let ids1 = payload_uuids(&v1.to_mobileconfig().unwrap());
    let ids2 = payload_uuids(&v2.to_mobileconfig().unwrap());
    assert_eq!(ids1, ids2);
    assert_ne!(v1.to_mobileconfig().unwrap(), v2.to_mobileconfig().unwrap());

    let uuid = Uuid::parse_str(&ids1[0].1).unwrap();
    assert_eq!(uuid.get_version_num(), 5);
    assert_eq!(uuid, namespace().uuid_for("de.schule.wifi"));
    assert_eq!(ids1[1].0, "de.schule.wifi.wifi");
    assert_eq!(ids1[0].1, ids1[0].1.to_uppercase());
}

#[test]
fn identifiers_differ_between_profiles_payloads_and_namespaces() {
    let a =
        Profile::new(namespace(), "de.schule.a", "A").with_payload("wifi", wifi("A", "password-1"));
    let b =
        Profile::new(namespace(), "de.schule.b", "B").with_payload("wifi", wifi("A", "password-1"));
    let other_ns = Profile::new(
        ProfileNamespace::from_dns_name("andere-schule.example"),
        "de.schule.a",
        "A",
    );
    assert_ne!(a.uuid(), b.uuid());
    assert_ne!(a.payload_uuid("wifi"), b.payload_uuid("wifi"));
    assert_ne!(a.uuid(), a.payload_uuid("wifi"));
    assert_ne!(a.uuid(), other_ns.uuid());
    assert_eq!(
        ProfileNamespace::from_dns_name("andere-schule.example"),
        ProfileNamespace::from_dns_name("andere-schule.example")
    );
}

#[test]
fn profile_plist_parses_back_with_special_characters_intact() {
    let ssid = "Kids & <Guests>";
    let profile = Profile::new(namespace(), "de.schule.kids", "Kids & <Guests>")
        .with_payload("wifi", wifi(ssid, "pass&word<>"));
    let value = Value::from_reader_xml(profile.to_mobileconfig().unwrap().as_slice()).unwrap();
    let payload = value.as_dictionary().unwrap()["PayloadContent"]
        .as_array()
        .unwrap()[0]
        .as_dictionary()
        .unwrap();
    assert_eq!(payload["SSID_STR"].as_string(), Some(ssid));
    assert_eq!(payload["Password"].as_string(), Some("pass&word<>"));
}

#[test]
fn references_resolve_to_the_referenced_payload_uuid() {
    let profile = common::wifi_eap_tls_profile();
    let dict = profile.to_dictionary().unwrap();
    let content = dict["PayloadContent"].as_array().unwrap();
    let wifi = content[2].as_dictionary().unwrap();
    let identity_uuid = profile
        .payload_uuid("identity")
        .hyphenated()
        .to_string()
        .to_uppercase();
    assert_eq!(
        wifi["PayloadCertificateUUID"].as_string(),
        Some(identity_uuid.as_str())
    );
    let eap = wifi["EAPClientConfiguration"].as_dictionary().unwrap();
    let anchor = profile
        .payload_uuid("radius-ca")
        .hyphenated()
        .to_string()
        .to_uppercase();
    assert_eq!(
        eap["PayloadCertificateAnchorUUID"].as_array().unwrap()[0].as_string(),
        Some(anchor.as_str())
    );
    assert_eq!(
        content[1].as_dictionary().unwrap()["PayloadUUID"].as_string(),
        Some(identity_uuid.as_str())
    );
}

fn eap_tls(identity: &str, anchor: &str) -> Wifi {
    Wifi {
        ssid: "S".to_owned(),
        hidden_network: false,
        auto_join: true,
        security: WifiSecurity::EapTls {
            encryption: WifiEncryption::Wpa2,
            identity: identity.to_owned(),
            user_name: None,
            trust: ServerTrust {
                anchor_certificates: vec![anchor.to_owned()],
                server_names: Vec::new(),
            },
        },
    }
}

fn root() -> RootCertificate {
    RootCertificate {
        der: vec![1],
        file_name: None,
    }
}

fn p12() -> Pkcs12Identity {
    Pkcs12Identity {
        pkcs12: vec![2],
        password: None,
        file_name: None,
    }
}

#[test]
fn profile_errors_name_the_problem() {
    let base = || Profile::new(namespace(), "de.schule.t", "T");

    let error = base()
        .with_payload("ca", root())
        .with_payload("ca", root())
        .to_mobileconfig()
        .unwrap_err();
    assert_eq!(error, ProfileError::DuplicatePayloadKey("ca".to_owned()));

    let error = base()
        .with_payload("ca", root())
        .with_payload("wifi", eap_tls("missing", "ca"))
        .to_mobileconfig()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "payload \"wifi\" refers to \"missing\", which is not a payload of this profile"
    );

    let error = base()
        .with_payload("ca", root())
        .with_payload("id", p12())
        .with_payload("wifi", eap_tls("ca", "ca"))
        .to_mobileconfig()
        .unwrap_err();
    assert!(matches!(
        error,
        ProfileError::WrongReferenceKind {
            found: "com.apple.security.root",
            ..
        }
    ));

    let error = base()
        .with_payload("ca", root())
        .with_payload("id", p12())
        .with_payload("wifi", eap_tls("id", "id"))
        .to_mobileconfig()
        .unwrap_err();
    assert!(matches!(
        error,
        ProfileError::WrongReferenceKind {
            expected: "a root certificate",
            ..
        }
    ));

    assert_eq!(
        Profile::new(namespace(), "de schule", "T").to_mobileconfig(),
        Err(ProfileError::InvalidIdentifier("de schule".to_owned()))
    );
    assert!(matches!(
        base()
            .with_payload("wifi", wifi(&"x".repeat(33), "password-1"))
            .to_mobileconfig(),
        Err(ProfileError::InvalidField { .. })
    ));
    assert!(
        base()
            .with_payload("wifi", wifi("S", "short"))
            .to_mobileconfig()
            .is_err()
    );
}

fn mdm(identity: &str) -> MdmEnrollment {
    MdmEnrollment {
        server_url: "https://mdm.example/mdm".to_owned(),
        check_in_url: None,
        topic: "com.apple.mgmt.External.x".to_owned(),
        identity: identity.to_owned(),
        sign_message: false,
        access_rights: MdmEnrollment::ALL_ACCESS_RIGHTS,
        check_out_when_removed: false,
        server_capabilities: Vec::new(),
        use_development_apns: None,
    }
}

#[test]
fn mdm_payload_is_checked_before_a_device_rejects_it() {
    let profile = |payload: MdmEnrollment| {
        Profile::new(namespace(), "de.schule.mdm", "MDM")
            .with_payload("id", p12())
            .with_payload("mdm", payload)
            .to_mobileconfig()
    };
    assert!(profile(mdm("id")).is_ok());
    assert!(
        profile(MdmEnrollment {
            server_url: "http://mdm.example".to_owned(),
            ..mdm("id")
        })
        .is_err()
    );
    assert!(
        profile(MdmEnrollment {
            topic: "com.example.push".to_owned(),
            ..mdm("id")
        })
        .is_err()
    );
    assert!(
        profile(MdmEnrollment {
            access_rights: 0,
            ..mdm("id")
        })
        .is_err()
    );
    assert!(
        profile(MdmEnrollment {
            access_rights: 2,
            ..mdm("id")
        })
        .is_err()
    );
    assert!(
        profile(MdmEnrollment {
            access_rights: 3,
            ..mdm("id")
        })
        .is_ok()
    );

    let two = Profile::new(namespace(), "de.schule.mdm", "MDM")
        .with_payload("id", p12())
        .with_payload("mdm1", mdm("id"))
        .with_payload("mdm2", mdm("id"))
        .to_mobileconfig();
    assert_eq!(two, Err(ProfileError::SingletonPayload("com.apple.mdm")));
}

#[test]
fn profiles_round_trip_through_json() {
    for (name, profile) in common::apple_profiles() {
        let json = serde_json::to_string(&profile).unwrap();
        let back: Profile = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, profile, "{name}");
    }
    let payload: Payload =
        serde_json::from_str(r#"{"type":"root_certificate","der":"AQID"}"#).unwrap();
    assert_eq!(
        payload,
        Payload::RootCertificate(RootCertificate {
            der: vec![1, 2, 3],
            file_name: None
        })
    );
}

#[test]
fn commands_round_trip_through_json_and_render_their_request_type() {
    let commands = [
        Command::device_information(),
        Command::SecurityInfo,
        Command::InstallProfile {
            payload: vec![0, 255, 7],
        },
        Command::ClearPasscode {
            unlock_token: vec![1; 40],
        },
        Command::set_device_name("iPad-1"),
        Command::EraseDevice {
            pin: None,
            preserve_data_plan: None,
            disallow_proximity_setup: Some(true),
        },
    ];
    for command in commands {
        let json = serde_json::to_value(&command).unwrap();
        assert_eq!(json["request_type"], command.request_type());
        let back: Command = serde_json::from_value(json).unwrap();
        assert_eq!(back, command);

        let plist = Value::from_reader_xml(command.to_plist("uuid-1").as_slice()).unwrap();
        let envelope = plist.as_dictionary().unwrap();
        assert_eq!(envelope["CommandUUID"].as_string(), Some("uuid-1"));
        assert_eq!(
            envelope["Command"].as_dictionary().unwrap()["RequestType"].as_string(),
            Some(command.request_type())
        );
    }
    let json = serde_json::to_string(&Command::InstallProfile {
        payload: b"hi".to_vec(),
    })
    .unwrap();
    assert_eq!(
        json,
        r#"{"request_type":"InstallProfile","payload":"aGk="}"#
    );
}

#[test]
fn install_profile_carries_the_profile_bytes_as_data() {
    let profile = common::root_certificate_profile()
        .to_mobileconfig()
        .unwrap();
    let command = Command::InstallProfile {
        payload: profile.clone(),
    };
    let plist = Value::from_reader_xml(command.to_plist("u").as_slice()).unwrap();
    let payload = plist.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap()["Payload"]
        .as_data()
        .unwrap()
        .to_vec();
    assert_eq!(payload, profile);
}

#[test]
fn a_closure_can_hand_out_the_servers_own_command_ids() {
    let mut issued = Vec::new();
    let mut next = 0;
    let mut ids = || {
        next += 1;
        CmdId::new(format!("cmd-{next:04}")).unwrap()
    };
    let restrictions = windows::WindowsRestrictions {
        allow_camera: Some(false),
        is_education_environment: Some(true),
        ..windows::WindowsRestrictions::default()
    };
    for command in windows::restrictions(&mut ids, &restrictions).unwrap() {
        let replace = parse_document(&command.to_xml());
        issued.push((
            replace.child("CmdID").text.clone(),
            replace.path(&["Item", "Target", "LocURI"]).text.clone(),
            replace.path(&["Item", "Data"]).text.clone(),
        ));
    }
    assert_eq!(
        issued,
        [
            (
                "cmd-0001".to_owned(),
                "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera".to_owned(),
                "0".to_owned()
            ),
            (
                "cmd-0002".to_owned(),
                "./Device/Vendor/MSFT/Policy/Config/Education/IsEducationEnvironment".to_owned(),
                "1".to_owned()
            ),
        ]
    );
}
