//! Throwaway certificates for a local secure cluster: a CA, one certificate per node (serving
//! clients and peers alike, so it names `node<ID>.synod` as well as localhost), and a client
//! certificate for etcdctl. For trying TLS out, not for production: a real deployment's CA
//! should not keep its key in the data directory.

use crate::Outcome;
use anyhow::{Context, Result};
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Where a cluster's certificates are, and the flags that use them.
pub struct ClusterCerts {
    /// The directory.
    pub dir: PathBuf,
}

impl ClusterCerts {
    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Node `id`'s certificate and key.
    pub fn node(&self, id: u64) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("node{id}.pem")),
            self.dir.join(format!("node{id}-key.pem")),
        )
    }

    /// The client certificate and key for etcdctl.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.pem"), self.dir.join("client-key.pem"))
    }

    /// The `synod server` flags that turn on client TLS (with client certificates) and peer
    /// mutual TLS for node `id`.
    pub fn server_flags(&self, id: u64) -> Vec<String> {
        let (cert, key) = self.node(id);
        let ca = self.ca().display().to_string();
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        [
            ("--cert-file", &cert),
            ("--key-file", &key),
            ("--trusted-ca-file", &ca),
            ("--peer-cert-file", &cert),
            ("--peer-key-file", &key),
            ("--peer-trusted-ca-file", &ca),
        ]
        .into_iter()
        .flat_map(|(f, v)| [f.to_string(), v.clone()])
        .chain(["--client-cert-auth".to_string()])
        .collect()
    }

    /// etcdctl's flags for these certificates.
    pub fn etcdctl_flags(&self) -> String {
        let (cert, key) = self.client();
        format!(
            "--cacert={} --cert={} --key={}",
            self.ca().display(),
            cert.display(),
            key.display()
        )
    }
}

fn ca_params() -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "Synod throwaway CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// A certificate for `common_name` naming `dns` and loopback, for server and client use.
fn leaf_params(common_name: &str, dns: &[String]) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(dns.to_vec())?;
    p.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(p)
}

fn write(path: &Path, text: &str, secret: bool) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    Ok(())
}

/// Writes a CA and certificates for nodes `1..=nodes` and one client into `dir`, unless every
/// one of them is there already (so a restarted cluster keeps its certificates).
pub fn ensure(dir: &Path, nodes: u64) -> Result<ClusterCerts> {
    let certs = ClusterCerts {
        dir: dir.to_path_buf(),
    };
    let mut wanted = vec![certs.ca(), certs.client().0, certs.client().1];
    for id in 1..=nodes {
        let (c, k) = certs.node(id);
        wanted.extend([c, k]);
    }
    if wanted.iter().all(|p| p.exists()) {
        return Ok(certs);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write(&certs.ca(), &ca_cert.pem(), false)?;
    write(&dir.join("ca-key.pem"), &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca_params, ca_key);
    for id in 1..=nodes {
        let names = vec!["localhost".to_string(), synod_server::tls::member_name(id)];
        let key = KeyPair::generate()?;
        let cert = leaf_params(&format!("node{id}"), &names)?.signed_by(&key, &issuer)?;
        let (c, k) = certs.node(id);
        write(&c, &cert.pem(), false)?;
        write(&k, &key.serialize_pem(), true)?;
    }
    let key = KeyPair::generate()?;
    let cert = leaf_params("root", &["localhost".to_string()])?.signed_by(&key, &issuer)?;
    let (c, k) = certs.client();
    write(&c, &cert.pem(), false)?;
    write(&k, &key.serialize_pem(), true)?;
    Ok(certs)
}

/// Options of `synod certs`.
#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Where to write them. Files already there are kept if the set is complete.
    #[arg(long, default_value = "synod-tls")]
    dir: PathBuf,
    /// Certificates for nodes 1 to this.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=99))]
    nodes: u64,
}

/// `synod certs`: writes the files and prints the flags that use them.
pub fn run(args: CertsArgs) -> Result<Outcome> {
    let certs = ensure(&args.dir, args.nodes)?;
    println!("certificates in {}", certs.dir.display());
    println!(
        "node 1 serves with:  synod server --id 1 {} ...",
        certs.server_flags(1).join(" ")
    );
    println!(
        "etcdctl uses:        etcdctl {} --endpoints=https://...",
        certs.etcdctl_flags()
    );
    Ok(Outcome::Ok)
}
