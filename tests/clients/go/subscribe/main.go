// The Go example of the original firehose user guide (doc/source/firehose.rst,
// "MQTT Protocol Example"), unchanged but for the broker address: it subscribes
// to '#' and prints every message. tests/e2e/test_go_paho.py replaces
// 127.0.0.1:1883 with its broker's port and builds it with Debian's
// golang-github-eclipse-paho.mqtt.golang-dev:
//   GOPATH=/usr/share/gocode GO111MODULE=off go build
package main
import (
  "fmt"
  MQTT "github.com/eclipse/paho.mqtt.golang"
  "os"
  "strconv"
  "time"
)
func onMessageReceived(client MQTT.Client, msg MQTT.Message) {
    fmt.Printf("TOPIC: %s\n", msg.Topic())
    fmt.Printf("MSG: %s\n", msg.Payload())
}
func main() {
    hostname, _ := os.Hostname()
    opts := &MQTT.ClientOptions{
        ClientID: hostname+strconv.Itoa(time.Now().Second()),
    }
    opts.AddBroker("tcp://127.0.0.1:1883")
    opts.OnConnect = func(c MQTT.Client) {
        if token := c.Subscribe("#", 0, onMessageReceived); token.Wait() && token.Error() != nil {
            fmt.Println(token.Error())
            os.Exit(1)
        }
    }
    client := MQTT.NewClient(opts)
    if token := client.Connect(); token.Wait() && token.Error() != nil {
        panic(token.Error())
    }
    for {
        time.Sleep(1 * time.Second)
    }
}
