import { useState } from "react";
import { CustomerApp } from "./customer/CustomerApp.tsx";
import { OperatorApp } from "./operator/OperatorApp.tsx";
import { loadSession, saveSession, type Session } from "./session.ts";
import { SignIn } from "./SignIn.tsx";

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const signIn = (s: Session) => {
    saveSession(s);
    window.location.hash = "/";
    setSession(s);
  };
  const signOut = () => {
    saveSession(null);
    window.location.hash = "/";
    setSession(null);
  };
  if (!session) return <SignIn onSignIn={signIn} />;
  return session.kind === "operator" ? (
    <OperatorApp session={session} onSignOut={signOut} />
  ) : (
    <CustomerApp session={session} onSignOut={signOut} />
  );
}
