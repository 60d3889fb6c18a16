// Command protogen regenerates the committed Go code of the project's
// .proto files with pinned tools only: the schema is compiled by
// github.com/bufbuild/protocompile and the code is written by the
// protoc-gen-go and protoc-gen-go-grpc plugins named as tools in go.mod, so
// no protoc binary is needed and every machine produces the same bytes.
//
//	protogen [-check] [-grpc] DIR FILE.proto...
//
// writes the generated files beside the .proto files in DIR; with -check it
// writes nothing and exits 1 if any committed file differs from what would be
// generated.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/pluginpb"
)

func main() {
	check := flag.Bool("check", false, "compare with the files on disk instead of writing them; exit 1 if stale")
	grpc := flag.Bool("grpc", false, "also run protoc-gen-go-grpc")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: protogen [-check] [-grpc] DIR FILE.proto...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*check, *grpc, flag.Arg(0), flag.Args()[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run(check, grpc bool, dir string, files []string) error {
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{dir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), files...)
	if err != nil {
		return err
	}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: files, Parameter: proto.String("paths=source_relative")}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range compiled {
		add(f)
	}
	plugins := []string{"protoc-gen-go"}
	if grpc {
		plugins = append(plugins, "protoc-gen-go-grpc")
	}
	stale := 0
	for _, p := range plugins {
		out, err := plugin(p, req)
		if err != nil {
			return err
		}
		for _, f := range out {
			path := filepath.Join(dir, f.GetName())
			if check {
				old, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(old, []byte(f.GetContent())) {
					fmt.Fprintf(os.Stderr, "protogen: %s is stale: run `make proto` and commit the result\n", path)
					stale++
				}
				continue
			}
			if err := os.WriteFile(path, []byte(f.GetContent()), 0o644); err != nil {
				return err
			}
			fmt.Println("wrote", path)
		}
	}
	if stale > 0 {
		return fmt.Errorf("%d generated file(s) out of date", stale)
	}
	return nil
}

func plugin(name string, req *pluginpb.CodeGeneratorRequest) ([]*pluginpb.CodeGeneratorResponse_File, error) {
	in, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "tool", name)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var resp pluginpb.CodeGeneratorResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("%s: decode response: %w", name, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("%s: %s", name, resp.GetError())
	}
	return resp.File, nil
}
