//! `chronos-mqtt-pub`: publishes each line of a file as one MQTT message and waits for the
//! broker to acknowledge every one (QoS 1), for `benches/mqtt.sh`. (`mosquitto_pub -l`
//! stops at the end of its input with messages still queued, so it cannot be counted on to
//! deliver a whole file at QoS 1.)
//!
//! Prints one line: `published=N acked=N seconds=S`.

use clap::Parser;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "chronos-mqtt-pub", about = "Publishes a file's lines as MQTT messages (QoS 1)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long)]
    topic: String,
    /// One message per line.
    #[arg(long)]
    file: std::path::PathBuf,
    /// Messages sent and not yet acknowledged, at most.
    #[arg(long, default_value_t = 1000)]
    inflight: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chronos-mqtt-pub: {}: {e}", args.file.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let total = lines.len();
    let id = format!("chronos-mqtt-pub-{}", std::process::id());
    let mut options = MqttOptions::new(id, args.host, args.port);
    options.set_keep_alive(Duration::from_secs(30)).set_inflight(args.inflight);
    let (client, mut eventloop) = AsyncClient::new(options, args.inflight as usize);
    let topic = args.topic.clone();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for line in lines {
            if client.publish(topic.as_str(), QoS::AtLeastOnce, false, line.into_bytes()).await.is_err() {
                break;
            }
        }
        client
    });
    let mut acked = 0;
    while acked < total {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                eprintln!("chronos-mqtt-pub: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => {
                eprintln!("chronos-mqtt-pub: no acknowledgement for 30 s");
                break;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Ok(client) = sender.await {
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    }
    println!("published={total} acked={acked} seconds={seconds:.3}");
    if acked == total {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
